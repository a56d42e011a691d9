"""A FastAPI backend beside imserver in `jwt` mode: it owns the users, mints each one's
chat token (with the rooms it may join), publishes into the chat through imserver's
server API, and answers imserver's join hook.

imserver's config.yaml for it:

    auth:
      mode: jwt
      jwt: {algorithm: HS256, secret: "<IMSERVER_JWT_SECRET>", rooms_claim: rooms}
      join_hook: {url: "http://127.0.0.1:8000/chat/can-join", token: "<IMSERVER_HOOK_TOKEN>"}
    api:
      key: "<IMSERVER_API_KEY>"

Run it with `uvicorn fastapi_app:app --port 8000`. The user lookup below stands in
for the application's own sessions.
"""

from __future__ import annotations

import hmac
import os
import time

import httpx
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

IMSERVER = os.environ.get("IMSERVER_URL", "http://127.0.0.1:8080")
JWT_SECRET = os.environ["IMSERVER_JWT_SECRET"]  # auth.jwt.secret
API_KEY = os.environ["IMSERVER_API_KEY"]  # api.key
HOOK_TOKEN = os.environ.get("IMSERVER_HOOK_TOKEN", "")  # auth.join_hook.token
TOKEN_SECONDS = 3600

app = FastAPI()


class User(BaseModel):
    id: str
    name: str
    team: str


USERS = {"u1": User(id="u1", name="Ann", team="blue"), "u2": User(id="u2", name="Ben", team="red")}


def current_user(x_user: str = Header("")) -> User:
    """The application's own login (here: a header naming the user)."""
    user = USERS.get(x_user)
    if user is None:
        raise HTTPException(401, "log in first")
    return user


@app.get("/chat/token")
def chat_token(user: User = Depends(current_user)) -> dict[str, object]:
    """The browser (or the Python client) connects with this token, and asks for a
    fresh one before it expires (ChatConnection's getToken)."""
    expires = int(time.time()) + TOKEN_SECONDS
    claims = {"sub": user.id, "name": user.name, "exp": expires,
              "rooms": ["general", f"team-{user.team}"]}
    return {"token": jwt.encode(claims, JWT_SECRET, algorithm="HS256"), "expires": expires}


@app.post("/orders/{order_id}/shipped")
async def order_shipped(order_id: str, user: User = Depends(current_user)) -> dict[str, object]:
    """Tell the user in the chat, once however often this is retried: the order id is
    the idempotency key."""
    async with httpx.AsyncClient(base_url=IMSERVER, timeout=5) as chat:
        answer = await chat.post(
            f"/api/v1/users/{user.id}/messages",
            json={"text": f"Your order {order_id} has shipped.", "from": "shop", "name": "Shop"},
            headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": f"shipped-{order_id}"})
    if answer.status_code >= 500:
        raise HTTPException(503, "the chat cannot take it now; retry")
    answer.raise_for_status()
    published: dict[str, object] = answer.json()
    return published


class JoinAsk(BaseModel):
    user: str
    name: str
    room: str


@app.post("/chat/can-join")
def can_join(ask: JoinAsk, authorization: str = Header("")) -> dict[str, object]:
    """imserver's join hook: who may join and read which room."""
    if not hmac.compare_digest(authorization, f"Bearer {HOOK_TOKEN}"):
        raise HTTPException(401, "not imserver")
    user = USERS.get(ask.user)
    if user is None:
        return {"allow": False, "reason": "unknown user"}
    if ask.room in ("general", f"team-{user.team}"):
        return {"allow": True}
    return {"allow": False, "reason": f"team {user.team} only"}
