"""`python -m bot` start-up failures end in one line on stderr saying what to do, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from sandbox import Sandbox
from tests.e2e.test_startup_safety import RIGHT_KEY, bot_env, run_to_end

REFUSAL = "consensus-playground: cannot start: "


def one_line_refusal(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    refusals = [line for line in stderr.splitlines() if line.startswith(REFUSAL)]
    assert len(refusals) == 1 and stderr.rstrip().endswith(refusals[0]), stderr
    return refusals[0]


async def test_a_token_discord_rejects_is_one_line(tmp_path: Path) -> None:
    # The sandbox answers an unknown token as Discord does: 401 Unauthorized.
    async with Sandbox("127.0.0.1", 0) as sb:
        env = bot_env(tmp_path, MASTER_KEY=RIGHT_KEY, DISCORD_TOKEN="not-a-real-token",
                      DISCORD_API_BASE=sb.api_base, DISCORD_GATEWAY_URL=sb.gateway_url)
        code, _, stderr = await run_to_end(env, stdin=b"")
        assert [r.status for r in sb.requests if r.path.endswith("/users/@me")] == [401]
    line = one_line_refusal(stderr)
    assert code == 78
    assert "rejected DISCORD_TOKEN (401 Unauthorized)" in line and "Reset Token" in line


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_discord_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    env = bot_env(tmp_path, MASTER_KEY=RIGHT_KEY, DISCORD_TOKEN="some-token",
                  DISCORD_API_BASE=f"http://127.0.0.1:{port}/api/v10",
                  DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{port}/gateway")
    code, _, stderr = await run_to_end(env, stdin=b"")
    line = one_line_refusal(stderr)
    assert code == 69
    assert f"cannot reach http://127.0.0.1:{port}/api/v10" in line and "Check the network" in line


async def test_a_sandbox_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stdout, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY=RIGHT_KEY, SANDBOX_PORT=str(port)))
    line = one_line_refusal(stderr)
    assert code == 78 and stdout == ""
    assert f"port {port} on 127.0.0.1 is already in use" in line and "SANDBOX_PORT" in line
