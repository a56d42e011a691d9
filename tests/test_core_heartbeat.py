"""The heartbeat without sockets: which pong answers which ping, the exact edges at
which a ping is due and a connection is dead, and a sweep that survives a broken
connection."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imserver.core.hub import Renewal
from imserver.core.registry import Connection, User
from imserver.ops.heartbeat import DUE, Action, Heartbeat, decide, ride_along_after, sweep_period
from tests.core import Core, Wire, run, wire

# In-process tests take milliseconds: one that hangs (a fault in the store's close, say)
# is stopped after 30 s rather than the suite's 180.
pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def conn(name: str = "c", **fields: object) -> Connection:
    return Connection(id=name, user=User("u", "u"), transport=Wire(), **fields)  # type: ignore[arg-type]


def heartbeat(conns: list[Connection], clock: Clock, *, interval: float = 10.0, timeout: float = 20.0,
              client_interval: float = 10.0) -> Heartbeat:
    hb = Heartbeat(interval=interval, timeout=timeout, client_interval=client_interval,
                   send_ping=lambda c, payload: c.transport.send_ping(payload), clock=clock)
    for c in conns:
        hb.watch(c)
    return hb


def test_a_late_pong_to_an_old_ping_is_not_the_answer_to_the_current_one():
    clock = Clock(100.0)
    c = conn(last_seen=100.0)
    hb = heartbeat([c], clock)
    hb.sweep()
    first = wire(c).pings[-1]
    clock.now = 109.0  # the first ping unanswered; the next one is due
    hb.sweep()
    second = wire(c).pings[-1]
    assert first != second and c.ping_payload == second and c.ping_sent_at == 109.0
    assert Heartbeat.pong_received(c, first, 109.5) is None  # late: answers the old ping
    assert c.rtt is None and c.ping_payload == second
    assert c.last_seen == 109.5  # but any frame is a sign of life
    assert Heartbeat.pong_received(c, second, 109.75) == 0.75
    assert c.rtt == 0.75 and c.ping_payload is None


def test_a_repeated_pong_is_counted_once():
    clock = Clock(50.0)
    c = conn(last_seen=50.0)
    hb = heartbeat([c], clock)
    hb.sweep()
    payload = wire(c).pings[-1]
    assert Heartbeat.pong_received(c, payload, 50.25) == 0.25
    assert Heartbeat.pong_received(c, payload, 52.0) is None
    assert c.rtt == 0.25 and c.last_seen == 52.0


def test_an_unsolicited_pong_is_life_but_no_round_trip():
    c = conn(last_seen=1.0)
    assert Heartbeat.pong_received(c, b"\x00\x00\x00\x01", 5.0) is None
    assert c.rtt is None and c.last_seen == 5.0


def test_ping_payloads_are_distinct_four_byte_counters():
    clock = Clock(0.0)
    conns = [conn(f"c{i}", last_seen=0.0) for i in range(3)]
    heartbeat(conns, clock).sweep()
    payloads = [wire(c).pings[0] for c in conns]
    assert sorted(struct.unpack("!I", p)[0] for p in payloads) == [1, 2, 3]


def test_a_ping_is_due_at_exactly_nine_tenths_of_the_interval():
    kw = {"interval": 10.0, "timeout": 20.0}
    due = 10.0 * DUE
    assert DUE == 0.9
    assert decide(now=100.0, last_seen=100.0, ping_sent_at=100.0 - due, **kw) is Action.PING
    assert decide(now=100.0, last_seen=100.0, ping_sent_at=100.0 - due + 0.01, **kw) is Action.NONE
    assert decide(now=100.0, last_seen=80.0, ping_sent_at=99.0, **kw) is Action.TERMINATE
    assert decide(now=100.0, last_seen=80.01, ping_sent_at=99.0, **kw) is Action.NONE
    assert decide(now=100.0, last_seen=80.01, ping_sent_at=None, **kw) is Action.PING


def test_the_sweep_pings_at_exactly_the_due_age_and_not_a_hair_before():
    clock = Clock(100.0)
    exact, early = conn("exact", last_seen=100.0, ping_sent_at=91.0), conn("early", last_seen=100.0,
                                                                           ping_sent_at=91.01)
    heartbeat([exact, early], clock).sweep()
    assert len(wire(exact).pings) == 1 and exact.ping_sent_at == 100.0
    assert wire(early).pings == [] and early.ping_sent_at == 91.01


def test_the_sweep_aborts_at_exactly_the_timeout_and_not_a_hair_before():
    clock = Clock(100.0)
    dead, alive = conn("dead", last_seen=80.0, ping_sent_at=99.0), conn("alive", last_seen=80.01,
                                                                        ping_sent_at=99.0)
    heartbeat([dead, alive], clock).sweep()
    assert wire(dead).aborted and dead.close_reason == "heartbeat_timeout" and dead.close_code == 1006
    assert not wire(alive).aborted and alive.close_reason is None and wire(alive).pings == []


def test_a_silent_connection_never_pinged_is_aborted_not_pinged():
    clock = Clock(100.0)
    c = conn(last_seen=50.0)
    heartbeat([c], clock).sweep()
    assert wire(c).aborted and wire(c).pings == []


def test_an_expired_token_closes_with_4001_at_its_expiry():
    clock = Clock(100.0)
    expired = conn("expired", last_seen=100.0, ping_sent_at=99.0, expires_at=time.time() - 0.001)
    valid = conn("valid", last_seen=100.0, ping_sent_at=99.0, expires_at=time.time() + 3600)
    heartbeat([expired, valid], clock).sweep()
    assert wire(expired).closed == (4001, "token expired") and expired.close_reason == "token_expired"
    assert wire(expired).pings == [] and not wire(expired).aborted
    assert wire(valid).closed is None


def test_the_sweep_goes_on_past_connections_that_need_nothing_or_were_closed():
    clock = Clock(100.0)
    fresh = conn("fresh", last_seen=100.0, ping_sent_at=99.0)
    expired = conn("expired", last_seen=100.0, ping_sent_at=99.0, expires_at=time.time() - 1)
    due = conn("due", last_seen=100.0, ping_sent_at=90.0)
    heartbeat([fresh, expired, due], clock).sweep()
    assert wire(fresh).pings == [] and wire(expired).closed == (4001, "token expired")
    assert len(wire(due).pings) == 1


def test_the_ping_counter_wraps_at_32_bits():
    clock = Clock(0.0)
    c = conn(last_seen=0.0)
    hb = heartbeat([c], clock)
    hb._counter = 0xFFFFFFFE
    hb.sweep()
    clock.now = 9.0
    hb.sweep()
    assert wire(c).pings == [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]
    assert not wire(c).aborted


def test_a_connection_that_breaks_during_the_sweep_is_aborted_and_the_sweep_goes_on():
    clock = Clock(100.0)
    broken, fine = conn("broken", last_seen=100.0), conn("fine", last_seen=100.0)
    wire(broken).broken = True
    heartbeat([broken, fine], clock).sweep()
    assert wire(broken).aborted and broken.close_reason == "error"
    assert len(wire(fine).pings) == 1


def test_the_first_reason_a_connection_ends_for_is_kept():
    c = conn()
    c.terminate("heartbeat_timeout")
    c.end("kicked", 4003, "bye")
    assert (c.close_reason, c.close_code) == ("heartbeat_timeout", 1006)
    assert wire(c).closed == (4003, "bye")


def test_ride_along_pings_at_exactly_its_threshold():
    clock = Clock(0.0)
    c = conn(last_seen=0.0, ping_sent_at=100.0)
    hb = heartbeat([c], clock, interval=30.0, client_interval=10.0)
    assert hb.ride_along_after == 17.0 == ride_along_after(30.0, 10.0)
    hb.ride_along(c, 116.99)
    assert wire(c).pings == []
    hb.ride_along(c, 117.0)
    assert len(wire(c).pings) == 1 and c.ping_sent_at == 117.0
    assert ride_along_after(10.0, 100.0) == 1.0  # never under a tenth of the interval


def test_the_sweep_period_is_half_the_shorter_of_interval_and_timeout():
    assert sweep_period(10.0, 20.0) == 5.0
    assert sweep_period(20.0, 10.0) == 5.0


def test_start_is_idempotent_and_stop_stops():
    async def scenario() -> None:
        hb = heartbeat([], Clock(0.0), interval=10.0, timeout=20.0)
        assert hb.slots * hb.tick_seconds == 5.0  # every connection once per half interval
        assert hb._timer.callback_time == pytest.approx(1000 * hb.tick_seconds)
        hb.start()
        hb.start()
        assert hb._timer.is_running()
        hb.stop()
        assert not hb._timer.is_running()

    run(scenario())


def test_a_tick_visits_only_its_share_of_the_connections():
    """A sweep of every connection at once held the event loop for as long as 19,000
    pings take; each tick now visits a slice, every connection once per sweep period."""
    clock = Clock(1000.0)
    conns = [conn(f"c{i}", last_seen=1000.0) for i in range(2000)]
    hb = heartbeat(conns, clock)
    hb.start_clock()
    pinged_per_tick = []
    for _ in range(hb.slots):
        clock.now += hb.tick_seconds
        before = sum(len(wire(c).pings) for c in conns)
        hb.tick()
        pinged_per_tick.append(sum(len(wire(c).pings) for c in conns) - before)
    assert hb.slots >= 10
    assert sum(pinged_per_tick) == len(conns)  # everyone once in one period
    assert max(pinged_per_tick) <= 3 * len(conns) / hb.slots  # spread, not all in one tick
    assert all(len(wire(c).pings) == 1 for c in conns)


def test_ticks_that_come_late_catch_up_so_no_connection_waits_longer_than_a_period():
    clock = Clock(1000.0)
    conns = [conn(f"c{i}", last_seen=1000.0, ping_sent_at=999.0) for i in range(500)]
    hb = heartbeat(conns, clock)
    hb.start_clock()
    clock.now += 3 * hb.tick_seconds
    hb.tick()
    clock.now = 1000.0 + 25.0  # the loop stalled for longer than a whole period
    hb.tick()
    assert all(wire(c).aborted for c in conns)  # silent for 25 s > the 20 s timeout


def test_a_connection_forgotten_is_no_longer_visited():
    clock = Clock(1000.0)
    gone, kept = conn("gone", last_seen=1000.0), conn("kept", last_seen=1000.0)
    hb = heartbeat([gone, kept], clock)
    hb.forget(gone)
    hb.sweep()
    assert wire(gone).pings == [] and len(wire(kept).pings) == 1


def test_each_tick_reports_how_long_it_took():
    durations: list[float] = []
    clock = Clock(1000.0)
    hb = Heartbeat(interval=10.0, timeout=20.0, client_interval=10.0,
                   send_ping=lambda c, payload: c.transport.send_ping(payload), clock=clock,
                   observe_sweep=durations.append)
    hb.start_clock()
    clock.now += hb.tick_seconds
    hb.tick()
    hb.tick()  # nothing due since the last: not a sweep
    assert len(durations) == 1 and 0 <= durations[0] < 1


def pings_over(seconds: float, *, text_ping_phase: float | None, text_pings_until: float = math.inf,
               client_interval: float = 10.0) -> tuple[list[float], list[float]]:
    """Drive one connection's heartbeat tick by tick for `seconds`, the client answering
    every ping at once and sending a text ping every client_interval (from the phase
    given, until `text_pings_until`; None: never). Returns when the server pinged, and
    which of those pings rode along with the pong to a text ping."""
    clock = Clock(0.0)
    c = conn(last_seen=0.0)
    hb = heartbeat([c], clock, client_interval=client_interval)
    hb.start_clock()
    sent: list[float] = []
    riding: list[float] = []
    next_text_ping = text_ping_phase if text_ping_phase is not None else math.inf
    while clock.now < seconds:
        clock.now = round(clock.now + 0.05, 2)
        if clock.now >= next_text_ping and clock.now < text_pings_until:
            before = len(wire(c).pings)
            c.last_seen = clock.now
            hb.ride_along(c, clock.now)
            if len(wire(c).pings) > before:
                riding.append(clock.now)
            next_text_ping += client_interval
        before = len(wire(c).pings)
        hb.tick()
        if len(wire(c).pings) > before:
            c.last_seen = clock.now  # the pong
        sent += [clock.now] * (len(wire(c).pings) - before)
    return sorted(sent + riding), riding


def test_a_client_that_text_pings_gets_every_ping_with_a_pong_after_the_first():
    """One send per interval for an idle browser, whatever its phase against the sweep's
    visits: a visit that finds a ping due leaves it to the text ping about to come."""
    for phase in [0.05 + 0.35 * k for k in range(29)]:
        pings, riding = pings_over(100.0, text_ping_phase=round(phase, 2))
        after_first_text_ping = [t for t in pings if t >= phase]
        assert after_first_text_ping and after_first_text_ping == riding, phase
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) <= 10.0 * 1.1, phase


def test_a_client_that_stops_text_pinging_is_pinged_by_the_sweep_again():
    pings, _ = pings_over(120.0, text_ping_phase=2.0, text_pings_until=42.5)
    late = [t for t in pings if t > 42.5]
    assert len(late) >= 7  # about one every interval from there on
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) <= 10.0 * 1.1 + 5.0  # at worst one visit late


def test_a_client_that_never_text_pings_is_pinged_every_interval():
    pings, riding = pings_over(60.0, text_ping_phase=None)
    assert riding == [] and len(pings) >= 6
    assert all(9.0 <= b - a <= 10.0 + 5.0 for a, b in itertools.pairwise(pings))


def test_a_due_ping_waits_only_for_a_text_ping_expected_before_it_is_a_tenth_late():
    edges = dict(now=100.0, last_seen=100.0, ping_sent_at=90.0, interval=10.0, timeout=20.0)
    assert decide(**edges, next_text_ping=101.0) is Action.NONE  # due at 100; 101 is 11 s after 90
    assert decide(**edges, next_text_ping=101.01) is Action.PING  # later than a tenth late
    assert decide(**edges, next_text_ping=100.0) is Action.PING  # expected by now and not come
    assert decide(**edges, next_text_ping=None) is Action.PING
    assert decide(**{**edges, "last_seen": 80.0}, next_text_ping=100.5) is Action.TERMINATE


class WatchedConnection(Connection):
    """A connection that counts how often the heartbeat state of it is read while
    `watching` is set."""

    watching = False
    reads = 0

    def _read(self, name: str) -> object:
        if WatchedConnection.watching:
            WatchedConnection.reads += 1
        return getattr(Connection, name).__get__(self)

    last_seen = property(lambda self: self._read("last_seen"),  # type: ignore[assignment]
                         lambda self, v: Connection.last_seen.__set__(self, v))
    ping_sent_at = property(lambda self: self._read("ping_sent_at"),  # type: ignore[assignment]
                            lambda self, v: Connection.ping_sent_at.__set__(self, v))
    expires_at = property(lambda self: self._read("expires_at"),  # type: ignore[assignment]
                          lambda self, v: Connection.expires_at.__set__(self, v))


def test_a_tick_looks_only_at_connections_whose_next_check_has_come():
    """19,000 idle browsers, each visited twice an interval: most of the visit's time
    went to reading the state of connections that needed nothing, scattered in memory.
    A text-pinging client moves its next check on, and the visits pass it by."""
    clock = Clock(1000.0)
    conns = [WatchedConnection(id=f"c{i}", user=User("u", "u"), transport=Wire(), last_seen=1000.0)
             for i in range(200)]
    hb = heartbeat(conns, clock)
    hb.start_clock()
    looked_at = []
    for step in range(1, 400):  # 40 s in ticks of 0.1 s
        clock.now = 1000.0 + step * hb.tick_seconds
        if step % 100 == 1:  # every client's text ping, every 10 s
            for c in conns:
                c.last_seen = clock.now
                hb.ride_along(c, clock.now)
        WatchedConnection.watching, WatchedConnection.reads = True, 0
        try:
            hb.tick()
        finally:
            WatchedConnection.watching = False
        looked_at.append(WatchedConnection.reads)
    assert all(len(wire(c).pings) == 4 for c in conns)  # each ping rode along with a pong
    assert all(c.closed is False and wire(c).closed is None for c in conns)
    assert sum(looked_at) == 0


def test_a_renewed_token_that_expires_sooner_is_closed_at_its_new_expiry():
    """The next check kept for a connection counts its token's expiry; a renewal may
    bring that nearer, and the registry tells the heartbeat to look again."""

    class Renewing:
        def renew(self, token: str) -> asyncio.Future[Renewal]:
            done: asyncio.Future[Renewal] = asyncio.get_running_loop().create_future()
            done.set_result(Renewal("ann", time.time() - 0.001, "jti-2", None))
            return done

    async def scenario() -> None:
        core = Core()
        core.hub.gate = Renewing()  # type: ignore[assignment]
        clock = Clock(1000.0)
        hb = heartbeat([], clock)
        core.registry.on_open.append(hb.watch)
        core.registry.on_close.append(hb.forget)
        core.registry.on_renew.append(hb.recheck)
        ann = core.connect("ann")
        ann.expires_at, ann.last_seen = time.time() + 3600, 1000.0
        hb.start_clock()
        hb.ride_along(ann, 1000.0)  # a text ping: nothing falls due for a while
        core.do(ann, {"type": "refresh", "token": "new"})
        await core.settle()
        assert wire(ann).of_type("refreshed")
        clock.now = 1000.0 + hb.slots * hb.tick_seconds  # one period: every slot visited
        hb.tick()
        assert wire(ann).closed == (4001, "token expired")
        await core.aclose()

    run(scenario())


@given(last_seen=st.floats(0, 60), ping_sent_at=st.floats(0, 60),
       text_ping_at=st.none() | st.floats(0, 60), now=st.floats(0, 90))
def test_the_next_check_is_exactly_when_decide_first_acts(last_seen, ping_sent_at, text_ping_at, now):
    """Before a connection's next check a visit may pass it by: decide() has nothing for
    it then; from the next check on, decide() acts (a ping, or the end)."""
    c = conn(last_seen=last_seen, ping_sent_at=ping_sent_at, text_ping_at=text_ping_at)
    hb = heartbeat([], Clock(0.0))
    next_check = hb.next_check(c, 0.0, time.time())
    action = decide(now=now, last_seen=last_seen, ping_sent_at=ping_sent_at, interval=10.0, timeout=20.0,
                    next_text_ping=None if text_ping_at is None else text_ping_at + 10.0)
    if now < next_check - 1e-9:
        assert action is Action.NONE
    elif now > next_check + 1e-9:
        assert action is not Action.NONE
