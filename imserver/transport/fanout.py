"""One frame to many connections: the hub's `deliver`.

Each receiver's output is asked whether the frame may go straight to its socket
(`PrebuiltOutput.claim`); if so the fan-out sends it there and then, or, in a large
fan-out, puts it in the send pool's chunks, which the helper threads share. During a
burst every frame waits for the writer's pass (writer.py). Sending
through each connection's own path cost nine Python calls more per receiver
around the same `send()`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..core.frames import Outbound
from ..core.registry import Connection
from .outbound import PrebuiltOutput
from .sendpool import send_now
from .writer import CoalescingWriter

log = logging.getLogger("imserver.fanout")


def fan_out(writer: CoalescingWriter, conns: Sequence[Connection], frame: Outbound) -> int:
    """Send one frame to every connection of `conns`; returns how many took it."""
    wire = frame.wire
    taken = 0
    pool = writer.pool
    direct = writer.fanout_begins()
    went_direct = False
    with pool.fanout(len(conns)):
        shared = pool.active
        for conn in conns:
            if conn.closed:
                continue
            transport = conn.transport
            try:
                if type(transport) is not PrebuiltOutput:
                    if not transport.send(frame):
                        continue
                else:
                    claimed = transport.claim(wire, direct)
                    if claimed is False:
                        continue
                    if claimed is not True:
                        went_direct = True
                        if shared:
                            pool.send(transport, claimed, wire)
                        elif not send_now(transport, claimed, wire):
                            continue
            except Exception:  # a broken connection must not stop the fan-out
                log.exception("connection %s: send failed", conn.id)
                conn.terminate("error")
                continue
            conn.frames_out += 1
            taken += 1
    if went_direct:
        writer.direct_sent()  # the pass ends, and with it each socket's direct send
    return taken
