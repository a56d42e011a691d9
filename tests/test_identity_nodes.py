"""Guest identities across nodes that share one store: two Identities, each over its
own PostgresStore on one schema (as two server processes would have), wired to each
other by handing one's published events to the other's remote_claim and
remote_revoke, or not, as a lost event would be. Their sockets are the core's
Registry with connections that only record how they were closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import jwt
import pytest

from imserver.config import AuthConfig
from imserver.core.errors import AuthError, NameTaken, StoreError
from imserver.core.registry import Connection, Registry
from imserver.http.auth import Authenticator, Credential
from imserver.http.identity import Identities
from imserver.storage.base import Backend
from tests import pg
from tests.backends import Stores
from tests.core import Wire, wire

pg.require_asyncpg()

from imserver.storage.postgres import PostgresStore  # noqa: E402

pytestmark = pytest.mark.timeout(60)

SECRET = "s" * 64
T = TypeVar("T")


def at_once(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that must finish without waiting for anything (no I/O):
    it is run one step, and fails the test if it suspends."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("it waited for something (a store read?)")


async def until(condition: Any, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        await asyncio.sleep(0.05)


class Node:
    """One server's identity side: its own store, authenticator, registry and Identities;
    what it publishes is kept in `events` until delivered (or lost)."""

    def __init__(self, store: Backend) -> None:
        self.store = store
        self.auth = Authenticator(AuthConfig(), SECRET)
        self.registry = Registry()
        self.events: list[dict[str, Any]] = []
        self.identities = Identities(self.auth, store, self.registry, publish=self.events.append)
        self._ids = 0

    async def login(self, name: str, *presented: Credential) -> tuple[str, Credential]:
        return await self.identities.guest_login(name, presented)

    def connect(self, cred: Credential) -> Connection:
        self._ids += 1
        conn = Connection(id=f"c{self._ids}", user=cred.user, transport=Wire(),
                          expires_at=cred.expires, token_id=cred.jti)
        self.registry.add(conn)
        return conn

    def deliver(self, other: Node) -> None:
        """Hand what this node published to the other, as the cluster code does."""
        for event in self.events:
            if event["k"] == "claim":
                other.identities.remote_claim(event)
            else:
                other.identities.remote_revoke(event)
        self.events.clear()


@contextlib.asynccontextmanager
async def two_nodes(dsn: str, schema: str) -> AsyncIterator[tuple[Node, Node]]:
    stores = [PostgresStore(dsn, schema=schema, timeout=10) for _ in range(2)]
    a, b = Node(stores[0]), Node(stores[1])
    try:
        for node in (a, b):
            node.identities.load(await node.store.open(time.time()))
        yield a, b
    finally:
        await asyncio.gather(*[s.close() for s in stores])


def forged(jti: str, user: str = "g:mallory", name: str = "mallory") -> str:
    """A well-signed guest token that no login issued."""
    return jwt.encode({"sub": user, "name": name, "iss": "imserver", "jti": jti,
                       "exp": int(time.time()) + 60}, SECRET)


@pytest.mark.gen_test(timeout=30)
async def test_a_token_from_another_node_is_read_from_the_store_once_then_known(pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        token, cred = await a.login("alice")
        assert a.events == [{"k": "claim", "key": "alice", "user": cred.user.id, "name": "alice",
                             "jti": cred.jti, "expires": cred.expires}]
        # The event has not reached B: B reads the token, with its claim, from the store.
        with pytest.raises(AuthError):
            b.auth.check(token)
        assert await b.identities.check(token) == cred
        assert b.identities.token_reads == 1
        assert at_once(b.identities.check(token)) == cred  # remembered: no I/O now
        claim = b.identities.holder("ALICE")
        assert claim is not None and claim.user_id == cred.user.id
        with pytest.raises(NameTaken, match="alice"):  # held here too, and in the store
            await b.login("alice")
        # Its holder logs in again through B, and A hears of it: no read on A.
        token_again, again = await b.login("Alice", cred)
        assert again.user.id == cred.user.id and again.user.name == "Alice"
        b.deliver(a)
        a.events.clear()
        assert at_once(a.identities.check(token_again)) == again
        assert a.identities.token_reads == 0
        assert b.identities.token_reads == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_logout_reaches_the_other_node_by_its_event_and_closes_the_sockets_there(
        pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        token, cred = await a.login("alice")
        token2, cred2 = await a.login("alice", cred)
        a.deliver(b)
        on_a, on_b, other_on_b = a.connect(cred), b.connect(cred), b.connect(cred2)
        assert await a.identities.logout(cred) == 1
        assert wire(on_a).closed == (4001, "logged out")
        assert a.events == [{"k": "revoke", "jti": cred.jti, "user": cred.user.id,
                             "expires": cred.expires}]
        assert b.identities.remote_revoke(a.events.pop()) == 1
        assert wire(on_b).closed == (4001, "logged out") and on_b.close_reason == "logged_out"
        assert wire(other_on_b).closed is None  # opened with the other token
        with pytest.raises(AuthError, match="revoked"):
            at_once(b.identities.check(token))  # refused from memory, no read
        assert at_once(b.identities.check(token2)) == cred2
        # A claim event of the revoked token, late (the two nodes' events may cross),
        # does not bring it back.
        b.identities.remote_claim({"k": "claim", "key": "alice", "user": cred.user.id,
                                   "name": "alice", "jti": cred.jti, "expires": cred.expires})
        with pytest.raises(AuthError):
            at_once(b.identities.check(token))
        # The last token goes, through B: the name is free on both nodes.
        assert await b.identities.logout(cred2) == 1
        b.deliver(a)
        assert a.identities.holder("alice") is None and b.identities.holder("alice") is None
        assert wire(other_on_b).closed == (4001, "logged out")
        _, newcomer = await b.login("alice")
        assert newcomer.user.id != cred.user.id
        assert b.identities.token_reads == 0 and a.identities.token_reads == 0


@pytest.mark.gen_test(timeout=30)
async def test_two_nodes_logging_in_one_name_at_once_give_it_to_one_user(pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        for n in range(8):
            name = f"race{n}"
            before = {node: len(node.auth.guest_tokens) for node in (a, b)}
            first, second = await asyncio.gather(a.login(name), b.login(name), return_exceptions=True)
            outcomes = [x for x in (first, second) if not isinstance(x, NameTaken)]
            assert len(outcomes) == 1 and isinstance(outcomes[0], tuple), (first, second)
            winner = outcomes[0][1]
            won, loser = (a, b) if outcomes[0] is first else (b, a)
            assert loser.events == [] and len(won.events) == 1
            assert len(loser.auth.guest_tokens) == before[loser]  # the refused token is not kept
            assert len(won.auth.guest_tokens) == before[won] + 1
            won.deliver(loser)
            for node in (a, b):
                claim = node.identities.holder(name)
                assert claim is not None and claim.user_id == winner.user.id
        assert len(await pg.execute(pg_dsn, pg_schema, "SELECT jti FROM tokens")) == 8


@pytest.mark.gen_test(timeout=30)
async def test_reload_after_a_missed_revoke_drops_the_token_and_closes_its_sockets(pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        token, cred = await a.login("alice")
        a.deliver(b)
        conn = b.connect(cred)
        bob_token, bob = await a.login("bob")
        await a.identities.logout(cred)
        a.events.clear()  # both events are lost on the way to B
        assert at_once(b.identities.check(token)) == cred  # B still believes it
        assert await b.identities.reload() == 1
        assert wire(conn).closed == (4001, "logged out")
        assert b.identities.holder("alice") is None
        assert at_once(b.identities.check(bob_token)) == bob  # what B missed is there now
        with pytest.raises(AuthError, match="revoked"):
            await b.identities.check(token)  # read once: revoked, remembered
        with pytest.raises(AuthError, match="revoked"):
            at_once(b.identities.check(token))
        # What a node learns while the read is under way is kept.
        reloading = asyncio.ensure_future(b.identities.reload())
        await asyncio.sleep(0)  # the read has been sent
        late = {"k": "claim", "key": "carol", "user": "g:carol", "name": "carol", "jti": "late",
                "expires": time.time() + 60}
        b.identities.remote_claim(late)
        assert await reloading == 0
        assert "late" in b.auth.guest_tokens and b.identities.holder("carol") is not None


@pytest.mark.gen_test(timeout=30)
async def test_malformed_events_are_ignored_with_one_log_line_each(pg_dsn, pg_schema, caplog):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        _, cred = await a.login("alice")
        a.deliver(b)
        good_claim = {"k": "claim", "key": "bob", "user": "g:bob", "name": "bob", "jti": "j",
                      "expires": time.time() + 60}
        good_revoke = {"k": "revoke", "jti": cred.jti, "user": cred.user.id, "expires": cred.expires}
        claims: list[Any] = [
            None, [], "claim", 42, {"k": "claim"}, {**good_claim, "k": "revoke"},
            {**good_claim, "key": 1}, {**good_claim, "key": "BOB"}, {**good_claim, "key": "x" * 5000},
            {**good_claim, "name": "a b"}, {**good_claim, "name": "x" * 100_000},
            {**good_claim, "name": ["bob"]}, {**good_claim, "user": "bob"},
            {**good_claim, "user": "g:" + "x" * 300}, {**good_claim, "user": None},
            {**good_claim, "jti": ""}, {**good_claim, "jti": "x" * 257}, {**good_claim, "jti": 7},
            {**good_claim, "expires": True}, {**good_claim, "expires": "1e12"},
            {**good_claim, "expires": float("nan")}, {**good_claim, "expires": float("inf")},
            {**good_claim, "expires": None}]
        revokes: list[Any] = [
            None, "revoke", {"k": "revoke"}, good_claim, {**good_revoke, "jti": None},
            {**good_revoke, "jti": "x" * 257}, {**good_revoke, "user": 5},
            {**good_revoke, "user": "not a guest"}, {**good_revoke, "expires": [1]},
            {**good_revoke, "expires": float("-inf")}]
        tokens_before = dict(b.auth.guest_tokens)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="imserver.identity"):
            for event in claims:
                b.identities.remote_claim(event)
            for event in revokes:
                assert b.identities.remote_revoke(event) == 0
        warnings = [r for r in caplog.records if r.name == "imserver.identity"]
        assert len(warnings) == len(claims) + len(revokes)
        assert all(r.exc_info is None for r in warnings)
        assert b.auth.guest_tokens == tokens_before and b.identities.holder("bob") is None
        # Well-formed but expired: nothing to do, and nothing to say.
        caplog.clear()
        b.identities.remote_claim({**good_claim, "expires": time.time() - 1})
        b.identities.remote_revoke({**good_revoke, "expires": time.time() - 1})
        assert not caplog.records and cred.jti in b.auth.guest_tokens
        b.identities.remote_claim(good_claim)  # the good ones do what they say
        assert b.identities.holder("bob") is not None
        assert b.identities.remote_revoke(good_revoke) == 0 and cred.jti not in b.auth.guest_tokens


@pytest.mark.gen_test(timeout=30)
async def test_unknown_tokens_cost_one_read_each_and_refusals_are_kept_briefly(pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (_, b):
        ids = b.identities
        with pytest.raises(AuthError, match="not valid"):
            await ids.check(forged("never"))
        assert ids.token_reads == 1
        with pytest.raises(AuthError):
            at_once(ids.check(forged("never")))  # refused again without a read
        # Many checks of one unknown token at once share one read.
        results = await asyncio.gather(*[ids.check(forged("storm")) for _ in range(50)],
                                       return_exceptions=True)
        assert all(isinstance(r, AuthError) for r in results) and ids.token_reads == 2
        # The refusals kept are bounded, and last a short while.
        ids.negative_max = 5
        for n in range(20):
            with pytest.raises(AuthError):
                await ids.check(forged(f"n{n}"))
        assert len(ids._unknown) <= 5
        ids.negative_seconds = 0.05
        reads = ids.token_reads
        with pytest.raises(AuthError):
            await ids.check(forged("brief"))

        async def read_again() -> bool:
            with pytest.raises(AuthError):
                await ids.check(forged("brief"))
            return ids.token_reads == reads + 2

        await until(read_again, what="read again")
        # A refusal kept for a token is no obstacle once it is issued and claimed: the
        # claim's event replaces it. (A login answers only once its claim is durable,
        # so a first check elsewhere reads it as valid anyway.)
        ids.negative_seconds = 60
        soon = forged("soon", "g:sam", "sam")
        with pytest.raises(AuthError):
            await ids.check(soon)
        ids.remote_claim({"k": "claim", "key": "sam", "user": "g:sam", "name": "sam", "jti": "soon",
                          "expires": time.time() + 60})
        assert at_once(ids.check(soon)).user.id == "g:sam"

    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        # Only a token's own user and name pass with its id (anything else needs the
        # secret to sign): each other one is refused, once with a read, and its refusal
        # does not stand in the way of the token the login issued.
        token, alice = await a.login("alice")
        assert alice.jti is not None
        for other in (forged(alice.jti, alice.user.id, "bob"), forged(alice.jti, "g:else", "alice")):
            with pytest.raises(AuthError):
                await b.identities.check(other)
            with pytest.raises(AuthError):
                at_once(b.identities.check(other))
        assert b.identities.token_reads == 2
        assert await b.identities.check(token) == alice


@pytest.mark.gen_test(timeout=30)
async def test_without_events_a_node_reads_a_token_again_and_learns_of_a_logout_elsewhere(
        pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, b):
        b.identities.publish = None  # B hears nothing from the others
        b.identities.recheck_seconds = 0.2
        token, cred = await a.login("alice")
        assert await b.identities.check(token) == cred
        conn = b.connect(cred)
        await a.identities.logout(cred)  # its event is not delivered

        async def refused() -> bool:
            try:
                await b.identities.check(token)
            except AuthError:
                return True
            return False

        await until(refused, what="refused on B")
        assert wire(conn).closed == (4001, "logged out")
        assert b.identities.holder("alice") is None


@pytest.mark.gen_test(timeout=30)
async def test_a_store_that_cannot_answer_refuses_unknown_tokens_and_keeps_known_ones(pg_dsn, pg_schema):
    async with two_nodes(pg_dsn, pg_schema) as (a, _):
        token, cred = await a.login("alice")
        unopened = Node(PostgresStore(pg_dsn, schema=pg_schema))  # never connected
        with pytest.raises(StoreError):
            await unopened.identities.check(token)
        a.deliver(unopened)
        unopened.identities.publish = None
        unopened.identities.recheck_seconds = 0  # due for a read, which fails: memory answers
        assert await unopened.identities.check(token) == cred


@pytest.mark.gen_test
async def test_a_known_token_is_read_again_only_on_a_shared_store_without_events(stores: Stores):
    store = await stores.open()
    try:
        node = Node(store)
        node.identities.recheck_seconds = 0
        token, cred = await node.login("alice")
        for _ in range(3):
            assert at_once(node.identities.check(token)) == cred  # events come: memory holds
        node.identities.publish = None
        for _ in range(3):
            assert await node.identities.check(token) == cred
        assert node.identities.token_reads == (3 if store.shared else 0)
        with pytest.raises(NameTaken):
            await node.login("ALICE")
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_prune_forgets_the_refusals_and_tokens_that_have_run_out(stores: Stores):
    store = await stores.open()
    try:
        node = Node(store)
        ids = node.identities
        ids.negative_seconds = 0.05
        soon = time.time() + 0.2
        ids.remote_claim({"k": "claim", "key": "carol", "user": "g:carol", "name": "carol",
                          "jti": "c1", "expires": soon})
        ids.remote_revoke({"k": "revoke", "jti": "r1", "user": "g:x", "expires": soon})
        with pytest.raises(AuthError):
            await ids.check(forged("unknown"))
        assert "c1" in node.auth.guest_tokens and ids._revoked and ids._unknown

        async def pruned() -> bool:
            ids.prune()
            return not (node.auth.guest_tokens or ids._revoked or ids._unknown or ids._confirmed)

        await until(pruned, what="pruned")
        assert ids.holder("carol") is None
    finally:
        await store.close()
