"""Dead-peer detection: how long the server keeps a peer that never answers.

Raw clients complete the WebSocket upgrade and then never send a byte (they
read, so the server's pings arrive, but no pong goes back): a peer whose
network vanished. The server must terminate them within
`ping_timeout + ping_interval` (promised bound). The peers connect spread
over one heartbeat sweep, so the table shows the range a real peer sees. A
control client that does answer pings must survive the whole time.

    python -m bench dead-peer [--peers 5] [--ping-interval 10 --ping-timeout 20]

Default: the default heartbeat settings (detection takes ~20-25 s); `--quick`
scales them down to 1 s / 2 s.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from imserver.testing import ServerProcess, SyncClient, login

from .report import median, print_table
from .servers import start_server


def dead_peer(server: ServerProcess, token: str, delay: float, wait: float, out: list[float]) -> None:
    """Connect after `delay`, never answer; append the seconds until the server dropped us
    (infinity when it had not after `wait`)."""
    time.sleep(delay)
    client = SyncClient(server.host, f"/ws?token={token}", timeout=wait, answer_pings=False)
    connected = time.monotonic()
    try:
        while client.recv() is not None:  # the welcome; pings are read and not answered
            if time.monotonic() - connected > wait:
                raise TimeoutError
    except ConnectionError:
        pass  # aborted by the server: the expected end
    except TimeoutError:
        out.append(float("inf"))  # never dropped
        return
    finally:
        client.sock.close()
    out.append(time.monotonic() - connected)


def control_peer(server: ServerProcess, token: str, stop: threading.Event, alive: list[bool]) -> None:
    """A client that answers pings; it must still be connected when `stop` is set."""
    client = SyncClient(server.host, f"/ws?token={token}", timeout=0.5, answer_pings=True)
    try:
        while not stop.is_set():
            try:
                if client.recv() is None:
                    alive.append(False)
                    return
            except TimeoutError:
                continue
        alive.append(True)
    except ConnectionError:
        alive.append(False)
    finally:
        client.close()


def run(args: argparse.Namespace) -> None:
    interval, timeout = args.ping_interval, args.ping_timeout
    bound = timeout + interval
    sweep = min(interval, timeout) / 2  # the server's sweep period (imserver.heartbeat)
    detected: list[float] = []
    alive: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="bench-deadpeer-") as tmp:
        server = start_server(Path(tmp) / "server", "prebuilt",
                              heartbeat={"ping_interval": interval, "ping_timeout": timeout})
        try:
            token = login(server.host, "deadpeer")
            stop = threading.Event()
            control = threading.Thread(target=control_peer, args=(server, token, stop, alive))
            control.start()
            peers = [threading.Thread(target=dead_peer,
                                      args=(server, token, i * sweep / args.peers, bound * 2, detected))
                     for i in range(args.peers)]
            for peer in peers:
                peer.start()
            for peer in peers:
                peer.join()
            stop.set()
            control.join()
        finally:
            server.stop()
    finite = [d for d in detected if d != float("inf")]
    header = ["heartbeat", "dead peers", "detected", "min s", "median s", "max s", "bound s",
              "max / bound", "control client"]
    rows = [[f"interval {interval:g} s, timeout {timeout:g} s", f"{args.peers}",
             f"{len(finite)}/{args.peers}", f"{min(finite, default=float('nan')):.2f}",
             f"{median(finite):.2f}", f"{max(finite, default=float('nan')):.2f}", f"{bound:g}",
             f"{max(finite, default=float('nan')) / bound:.2f}",
             "alive" if alive == [True] else "DROPPED"]]
    print_table("dead-peer: upgrade completed, then silence; time from connect to the server's close",
                header, rows)
    print(f"The server sweeps every {sweep:g} s (min(interval, timeout) / 2): a silent peer goes at the "
          f"first sweep >= timeout after its last frame, i.e. within timeout + {sweep:g} s.")
    verdict = "met" if len(finite) == args.peers and max(finite) <= bound and alive == [True] else "NOT met"
    print(f"target: every dead peer dropped within ping_timeout + ping_interval = {bound:g} s, "
          f"the live one kept: {verdict}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dead-peer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=5)
    parser.add_argument("--ping-interval", type=float, default=10.0, help="heartbeat.ping_interval")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="heartbeat.ping_timeout")
    parser.add_argument("--quick", action="store_true", help="heartbeat scaled to 1 s / 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.ping_interval, args.ping_timeout = 1.0, 2.0
    run(args)
