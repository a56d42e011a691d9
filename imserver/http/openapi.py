"""The OpenAPI 3 document of the server API (api.py), served at /api/v1/openapi.json.
tests/test_api.py runs schemathesis against it: every answer the API gives must be
one documented here, and every request it documents as valid is taken."""

from __future__ import annotations

import json
from typing import Any

ROOM_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
USER_PATTERN = r"^[A-Za-z0-9_.@|:+\-]{1,64}$"
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,128}$"  # visible ASCII: a header carries it as it is


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_COMMON = {
    "400": _error("The request is not acceptable; `message` says why"),
    "401": _error("No or wrong API key"),
    "404": _error("The API is off (no api.key), no such user, no live connection of the "
                  "user (disconnect), or no ban (lift)"),
    "413": _error("The body is larger than limits.max_body_bytes"),
    "415": _error("The body is not JSON"),
    "429": _error("Too many failed attempts from this address"),
    "503": _error("The store (or the cluster's presence) cannot answer now; try again"),
}

_ROOM = {"name": "room", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": ROOM_PATTERN}}

_USER = {"name": "user", "in": "path", "required": True,
         "description": "A user id, or a guest name held now",
         "schema": {"type": "string", "pattern": USER_PATTERN}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{schema}"}}}}


def _object(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}}


_PUBLISH = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Publish"}}}},
    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "A retried publish with the same key is stored once",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}}],
}

_PUBLISHED = {
    "201": {"description": "Stored and delivered", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Published"}}}},
    "200": {"description": "Stored before with this idempotency key: the first publish's id",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Published"}}}},
}

# At least one character that is neither a space nor a control character.
VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f]"
ID_MAX = 2**63 - 1


def openapi(max_text_chars: int) -> dict[str, Any]:
    """The document, for a server whose texts hold at most `max_text_chars`."""
    document: dict[str, Any] = json.loads(json.dumps(_DOCUMENT))
    document["components"]["schemas"]["Publish"]["properties"]["text"]["maxLength"] = max_text_chars
    return document


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "imserver server API", "version": "1",
             "description": "For the application's backend: publish, presence, history, "
                       "disconnect and ban."},
    "servers": [{"url": "/"}],
    "security": [{"apiKey": []}],
    "paths": {
        "/api/v1/rooms/{room}/messages": {
            "parameters": [_ROOM],
            "post": {"operationId": "publishToRoom", "summary": "Publish a message into a room",
                     **_PUBLISH, "responses": {**_PUBLISHED, **_COMMON,
                                               "403": _error("The sender is muted in the room")}},
            "get": {"operationId": "roomHistory", "summary": "A page of a room's messages",
                    "parameters": [
                        {"name": "before", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX}},
                        {"name": "limit", "in": "query", "required": False,
                         "description": "At most limits.history_page (the default)",
                         "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX}}],
                    "responses": {"200": {"description": "Oldest first", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/History"}}}},
                        **_COMMON}},
        },
        "/api/v1/rooms/{room}/presence": {
            "parameters": [_ROOM],
            "get": {"operationId": "roomPresence", "summary": "Who is in a room now, on every node",
                    "responses": {"200": {"description": "The members", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Presence"}}}},
                        **_COMMON}},
        },
        "/api/v1/users/{user}/disconnect": {
            "parameters": [_USER],
            "post": {"operationId": "disconnectUser",
                     "summary": "Close every connection of a user, on every node (4003 and the reason)",
                     "requestBody": _body("Reason"),
                     "responses": {"200": _object("Which connections were closed"),
                                   **_COMMON}},
        },
        "/api/v1/users/{user}/ban": {
            "parameters": [_USER],
            "post": {"operationId": "banUser",
                     "summary": "Ban a user for `seconds` or until lifted: its connections close, "
                                "its upgrades and logins are refused",
                     "requestBody": _body("Ban"),
                     "responses": {"200": _object("The ban, and the connections it closed"),
                                   **_COMMON}},
            "delete": {"operationId": "liftBan", "summary": "Lift a user's ban",
                       "requestBody": _body("Reason"),
                       "responses": {"200": _object("Lifted"), **_COMMON}},
        },
        "/api/v1/users/{user}/messages": {
            "parameters": [_USER],
            "post": {"operationId": "publishToUser", "summary": "A direct message to a user",
                     **_PUBLISH, "responses": {**_PUBLISHED, **_COMMON}},
        },
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                       "description": "api.key from config.yaml"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Publish": {
                "type": "object", "required": ["text"], "additionalProperties": False,
                "properties": {
                    "text": {"type": "string", "minLength": 1, "pattern": VISIBLE,
                             "description": "At most limits.max_text_chars characters"},
                    "from": {"type": "string", "pattern": USER_PATTERN,
                             "description": "The sender's user id (default: app)"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 64,
                             "description": "The sender's display name (default: from)"},
                    "idempotency_key": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                }},
            "Reason": {"type": "object", "additionalProperties": False, "properties": {
                "reason": {"type": "string", "pattern": r"\S",
                           "description": "Cut to 120 bytes (a close frame carries it)"}}},
            "Ban": {"type": "object", "additionalProperties": False, "properties": {
                "reason": {"type": "string", "pattern": r"\S"},
                "seconds": {"type": "integer", "minimum": 60, "maximum": 10 * 365 * 86400,
                            "nullable": True, "description": "null or absent: until lifted"}}},
            "Published": {"type": "object", "required": ["id", "ts", "duplicate"],
                          "properties": {"id": {"type": "integer"}, "ts": {"type": "number"},
                                         "duplicate": {"type": "boolean"}}},
            "Message": {"type": "object", "required": ["type", "id", "from", "name", "text", "ts"],
                        "properties": {"type": {"type": "string"}, "id": {"type": "integer"},
                                       "from": {"type": "string"}, "name": {"type": "string"},
                                       "room": {"type": "string"}, "text": {"type": "string"},
                                       "ts": {"type": "number"}, "cid": {"type": "string"},
                                       "edited": {"type": "number"},
                                       "deleted": {"type": "boolean"}}},
            "History": {"type": "object", "required": ["room", "messages", "more"],
                        "properties": {"room": {"type": "string"}, "more": {"type": "boolean"},
                                       "messages": {"type": "array", "items": {
                                           "$ref": "#/components/schemas/Message"}}}},
            "Presence": {"type": "object", "required": ["room", "members"],
                         "properties": {"room": {"type": "string"}, "members": {
                             "type": "array", "items": {
                                 "type": "object", "required": ["id", "name"],
                                 "properties": {"id": {"type": "string"},
                                                "name": {"type": "string"}}}}}},
        },
    },
}
