"""The sandbox terminal as a newcomer meets it (issue 9, item 16): README's walk-through typed line
by line against the real bot, :help's examples checked against the bot's command tree, and
`python -m bot`'s log kept out of the terminal."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import Sandbox, SandboxError
from sandbox.demo import populate_demo
from sandbox.terminal import HELP, Terminal, parse_command
from tests.e2e.conftest import make_settings, running_bot

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH_SECTION = "## Play at once, without Discord"
RESTART = "$ bash scripts/run.sh"
# What the terminal prints for a line it could not do (✗), a request of the bot's that failed (⚠),
# and the bot's own refusals (❌).
ERROR_MARKS = ("✗", "⚠", "❌")


@dataclass
class Step:
    kind: str  # "type": a line typed into the terminal; "restart": the program is started again
    line: str


def readme_walkthrough() -> list[Step]:
    """The first ```text block of README's "Play at once" section, as steps, comments left out.

    Read from README itself, so README and terminal cannot drift apart unnoticed.
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(WALKTHROUGH_SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "README's walk-through block is gone"
    steps = []
    for raw in block.group(1).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("$"):
            assert line == RESTART, f"the walk-through may only start the program again: {line!r}"
            steps.append(Step("restart", line))
        else:
            steps.append(Step("type", line))
    return steps


class Session:
    """``bash scripts/run.sh`` in-process: the sandbox (its world kept in the data folder, as
    ``python -m bot`` keeps it), the real bot, a terminal on a StringIO.

    ``restart`` stops the terminal, the bot and the sandbox, then starts them again on the same
    data folder, as ``:quit`` and ``bash scripts/run.sh`` do: everything the second run finds
    comes from the files the first one left (``sandbox-world.json`` and the database).
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        self.world_path = data / "sandbox-world.json"
        self.settings = make_settings(data / "playground.sqlite3")
        self.out = io.StringIO()
        self.sb: Sandbox | None = None
        self.term: Terminal | None = None
        self._bot: Any = None
        self.guild_ids: list[list[int]] = []  # the servers' ids at each start

    async def start(self) -> None:
        self.sb = Sandbox(world_path=self.world_path)
        await self.sb.__aenter__()
        if not self.sb.world_restored:
            populate_demo(self.sb)
        self.guild_ids.append(sorted(self.sb.guilds))
        self._bot = running_bot(self.sb, self.settings)
        await self._bot.__aenter__()
        self.term = Terminal(self.sb, self.out, save_dir=self.data / "saved")
        self.sb.add_listener(self.term.on_event)

    async def stop(self) -> None:
        if self.term is not None and self.sb is not None:
            await self.term.settle(10)
            self.sb.remove_listener(self.term.on_event)
            await self.term.close()
            self.term = None
        if self._bot is not None:
            await self._bot.__aexit__(None, None, None)
            self._bot = None
        if self.sb is not None:
            await self.sb.__aexit__(None, None, None)
            self.sb = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def type(self, line: str) -> str:
        """Type one line, wait until the bot has answered; what the terminal printed meanwhile."""
        assert self.term is not None and self.term.running, f"typed {line!r} after :quit"
        start = len(self.out.getvalue())
        await self.term.handle_line(line)
        await self.term.settle(15)
        return self.out.getvalue()[start:]


async def test_readme_walkthrough_runs_line_by_line(tmp_path):
    steps = readme_walkthrough()
    assert any(s.line.startswith("alice: !press") for s in steps)  # the walk-through presses a button
    assert any(s.kind == "restart" for s in steps)  # ...and starts the program again in the middle
    session = Session(tmp_path)
    await session.start()
    try:
        for number, step in enumerate(steps, 1):
            if step.kind == "restart":
                assert session.term is None or not session.term.running, "start again only after :quit"
                await session.restart()
                continue
            printed = await session.type(step.line)
            bad = [line for line in printed.splitlines() if line.lstrip().startswith(ERROR_MARKS)]
            assert not bad, f"README walk-through line {number} {step.line!r} printed:\n{printed}"
    finally:
        await session.stop()
    # What the lines promise, beyond "no error":
    assert len(session.guild_ids) == 2 and session.guild_ids[0] == session.guild_ids[1]  # the same servers
    text = session.out.getvalue()
    assert "Block 1 found!" in text
    saved = sorted((tmp_path / "saved").iterdir())
    assert saved, "the walk-through's !save saved nothing"
    for path in saved:
        if path.suffix == ".json":
            json.loads(path.read_bytes())  # a whole file, not a message about one


# `NAME: /cmd ...` or `NAME: !complete /cmd ...` in :help, up to two spaces (the explanation).
_HELP_EXAMPLE = re.compile(r"^[ \t]+[^\s:]+:[ \t]+(?:!complete[ \t]+)?(/\S.*?)(?:[ \t]{2,}|$)", re.M)


def _check_against_tree(commands: list[dict[str, Any]], text: str) -> str | None:
    """Why ``text`` ("/wallet pay member:@bob amount:5") is not a command of ``commands``; None if it is."""
    try:
        path, options = parse_command(text)
    except SandboxError as exc:
        return str(exc)
    words = path.split()
    command = next((c for c in commands if c["name"] == words[0]), None)
    if command is None:
        return f"no command /{words[0]}"
    node: dict[str, Any] = command
    for word in words[1:]:
        node = next((o for o in node.get("options") or [] if o["name"] == word and o.get("type") in (1, 2)), None)
        if node is None:
            return f"/{path}: no subcommand {word!r}"
    defined = {o["name"]: o for o in node.get("options") or [] if o.get("type") not in (1, 2)}
    if any(o.get("type") in (1, 2) for o in node.get("options") or []):
        return f"/{path} needs a subcommand"
    unknown = set(options) - set(defined)
    missing = {name for name, o in defined.items() if o.get("required") and name not in options}
    if unknown or missing:
        return f"/{path}: unknown options {sorted(unknown)}, missing {sorted(missing)}"
    return None


async def test_help_examples_are_commands_the_bot_has(playground):
    commands = playground.sb.commands.visible(playground.world.genesis.id)
    examples = _HELP_EXAMPLE.findall(HELP)
    assert len(examples) >= 4, examples
    problems = [f"{example}: {why}" for example in examples if (why := _check_against_tree(commands, example))]
    assert not problems, problems


async def test_help_meta_commands_all_exist(playground):
    """Every :command :help names is one the terminal knows."""
    names = sorted(set(re.findall(r"(?<![\w:]):([a-z]+)\b", HELP)) - {"quit", "disconnect"})
    assert {"who", "save", "wait", "commands", "history"} <= set(names)
    out = io.StringIO()
    term = Terminal(playground.sb, out, save_dir=Path("/nonexistent"))
    for name in names:
        await term.handle_line(f":{name}")
    assert "unknown command" not in out.getvalue(), out.getvalue()


async def test_python_m_bot_logs_to_a_file_and_shows_only_warnings(tmp_path):
    """INFO lines go to data/playground.log, not between the prompts; a warning is one line."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "MASTER_KEY")},
        "DATABASE_PATH": str(tmp_path / "data" / "playground.sqlite3"),
        "MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
        "SANDBOX_PORT": "0",
        "DASHBOARD_PORT": "0",  # tests run side by side: the default dashboard port may be taken
        "HASHING_WORKERS": "1",
        "LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(b"alice: /chain tip\n:wait\n:quit\n"), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out, err = stdout.decode(), stderr.decode()
    assert proc.returncode == 0, (out, err)
    assert "Tip: block 0" in out
    assert " INFO " not in out + err and "INFO" not in err
    # The new key's warning: on the terminal, as one line.
    assert err.splitlines() == [
        f"WARNING bot.settings: no MASTER_KEY set: created a new one in {tmp_path / 'data' / 'master.key'}. "
        "Back it up: without it no wallet can be opened."
    ]
    log = (tmp_path / "data" / "playground.log").read_text()
    assert "INFO    bot.app: synced " in log and "WARNING bot.settings: no MASTER_KEY set" in log
    # One sandbox, started once (it used to be started twice, and failed on a fixed port).
    assert log.count("sandbox listening on") == 1
    assert oct((tmp_path / "data" / "playground.log").stat().st_mode & 0o777) == "0o600"
    assert f"The log is in {tmp_path / 'data' / 'playground.log'}" in out


async def test_pasted_lines_press_the_button_of_the_answer_to_the_line_before(playground, tmp_path):
    """Pasted at once, "/help" then "!press 2" presses /help's second button: a press waits for the
    answers to the lines before it, as someone reading the screen would."""
    out = io.StringIO()
    term = Terminal(playground.sb, out, save_dir=tmp_path / "saved")
    playground.sb.add_listener(term.on_event)
    try:
        for line in ("alice: /help", "alice: !press 2", "alice: /chain export", "alice: !save"):
            await term.handle_line(line)  # no settle in between: the next line comes at once
        await term.settle(15)
    finally:
        playground.sb.remove_listener(term.on_event)
        await term.close()
    text = out.getvalue()
    assert "✗" not in text, text
    assert "**👛 Wallet**" in text
    [saved] = (tmp_path / "saved").iterdir()
    json.loads(saved.read_bytes())
