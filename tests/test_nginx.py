"""docs/nginx.conf, run with Debian's nginx in front of two nodes: a client that came
in through the proxy is back on the surviving node after its node dies, and has
missed nothing."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest

from imserver.testing import ServerProcess
from tests.chatters import Chatter, Tally
from tests.cluster import ROOM, cluster_settings, free_port, start_nodes, stored_messages
from tests.core import run
from tests.system import require_binary

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "nginx.conf"


def nginx_config(workdir: Path, port: int, nodes: list[ServerProcess]) -> Path:
    """The example with this test's ports, inside the few lines nginx needs around it."""
    text = EXAMPLE.read_text()
    upstreams = iter(node.port for node in nodes)
    text = re.sub(r"server 127\.0\.0\.1:\d+", lambda _: f"server 127.0.0.1:{next(upstreams)}", text)
    text = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", text)
    config = workdir / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} info;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n access_log {workdir / 'access.log'};\n"
        f" client_body_temp_path {workdir};\n proxy_temp_path {workdir};\n"
        f"{text}\n}}\n")
    return config


def test_through_nginx_a_client_of_a_dead_node_is_back_on_the_other_with_nothing_missed(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    nginx = require_binary("nginx")
    settings = cluster_settings(pg_dsn, pg_schema, redis_url, redis_prefix)
    settings["server"] = {"xheaders": True}
    nodes = start_nodes(tmp_path, settings)
    port = free_port()
    config = nginx_config(tmp_path, port, nodes)
    check = subprocess.run([nginx, "-t", "-c", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proxy = subprocess.Popen([nginx, "-c", str(config)], stderr=subprocess.DEVNULL)
    front = f"127.0.0.1:{port}"
    # Everyone comes in through nginx; someone stays on each node directly, to chat on.
    through = [Chatter(f"p{i}", [front], ROOM) for i in range(4)]
    direct = [Chatter("na", [nodes[0].host, nodes[1].host], ROOM),
              Chatter("nb", [nodes[1].host, nodes[0].host], ROOM)]
    chatters = [*through, *direct]

    async def scenario() -> None:
        deadline = time.monotonic() + 10
        while True:  # nginx listening
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                await asyncio.sleep(0.05)
        try:
            for chatter in chatters:
                await chatter.start()
            for number in range(30):
                if number == 10:
                    nodes[0].kill()
                for chatter in chatters:
                    chatter.say()
                await asyncio.sleep(0.03)
            deadline = time.monotonic() + 60
            while True:
                tally = Tally.of(chatters, await stored_messages(pg_dsn, pg_schema))
                if tally.clean() or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            print(f"through nginx: {tally} reconnects={sum(c.reconnects for c in chatters)}")
            assert tally.clean(), tally
            # Some of those that came through nginx were on the node that died.
            assert sum(c.reconnects for c in through) >= 1
        finally:
            for chatter in chatters:
                await chatter.close()

    try:
        run(scenario())
    finally:
        proxy.terminate()
        proxy.wait(10)
        for node in nodes:
            node.stop()
