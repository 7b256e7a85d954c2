"""The terminal client: pure rendering, command parsing, and a scripted session against the bot."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest

from sandbox import Sandbox, SandboxError, render_message, run_terminal
from sandbox.demo import DemoWorld
from sandbox.models import KIND_WEBHOOK
from sandbox.terminal import describe_command, parse_command
from sandbox_testbot import PlaygroundTestBot

EXPECTED = """\
[Genesis Guild #blocks] Chain Feed [WEBHOOK]
  New block by @alice in #general
  │ **Block 12**
  │ nonce 8812
  │ Hash: 000abc   Reward: 50
  │ Txs:
  │   a → b
  │   c → d
  │ — difficulty 4
  [1 Mine again] [2 Stop (disabled)] [Explorer ↗ https://example.invalid/b/12]"""


async def test_render_message_with_embed(sb: Sandbox, world: DemoWorld) -> None:
    webhook = sb.create_webhook(world.blocks, "Chain Feed")
    payload = {
        "content": f"New block by <@{world.alice.id}> in <#{world.general.id}>",
        "embeds": [
            {
                "title": "Block 12",
                "description": "nonce 8812",
                "fields": [
                    {"name": "Hash", "value": "000abc", "inline": True},
                    {"name": "Reward", "value": "50", "inline": True},
                    {"name": "Txs", "value": "a → b\nc → d", "inline": False},
                ],
                "footer": {"text": "difficulty 4"},
            }
        ],
        "components": [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 1, "label": "Mine again", "custom_id": "again"},
                    {"type": 2, "style": 2, "label": "Stop", "custom_id": "stop", "disabled": True},
                    {"type": 2, "style": 5, "label": "Explorer", "url": "https://example.invalid/b/12"},
                ],
            }
        ],
    }
    msg = sb.create_message(world.blocks, webhook.author_for(None), KIND_WEBHOOK, payload, [], source="test", webhook_id=webhook.id)
    assert render_message(msg, {"again": 1, "stop": 2}) == EXPECTED
    assert render_message(msg, {"again": 1, "stop": 2}) == EXPECTED  # pure: same state, same text
    sb.edit_message(msg, {"content": "Block 12 confirmed", "embeds": []}, [], source="test")
    edited = render_message(msg)
    assert edited.splitlines()[0].endswith("(edited)") and "Block 12 confirmed" in edited and "│" not in edited
    assert "[Mine again]" in edited  # without numbers the buttons are still shown


def test_parse_command() -> None:
    assert parse_command('/wallet pay member:@alice amount:5 note:"for lunch"') == (
        "wallet pay",
        {"member": "@alice", "amount": "5", "note": "for lunch"},
    )
    assert parse_command("/mine start") == ("mine start", {})
    with pytest.raises(SandboxError):
        parse_command("/mine amount:5 extra")
    with pytest.raises(SandboxError):
        parse_command("/")


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item + "\n"


async def test_terminal_session_against_the_bot(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    out = io.StringIO()
    script = lines(
        'alice: /play echo number:1 word:"two words" who:@bob',
        "bob@guild2: /play echo number:2 word:fork",
        "alice: /play buttons",
        ":wait",
        "bob: !press 1",
        ":wait",
        "carol: !complete /play pick fruit:ba",
        "alice: /play progress steps:2",
        "alice: /play hook",
        ":wait",
        ":webhooks",
        "alice: /nope",
        "mallory: /play secret",
        "alice: !press 99",
        "alice: /play echo number:notanumber word:x",
        "just some text",
        ":commands",
        "alice#blocks: /play upload",
    )
    term = await run_terminal(sb, script, out)
    text = out.getvalue()
    assert "Discord sandbox terminal — speaking in Genesis Guild #general" in text
    assert "[Genesis Guild #general] Consensus Playground [BOT] ↳ alice used /play echo" in text
    assert "number=2 word=TWO WORDS who=bob (Member, admin=False)" in text
    assert "[Fork Town #general] Consensus Playground [BOT] ↳ bob used /play echo\n  number=3 word=FORK" in text
    assert "[1 Bump] [2 Later] [3 Shout]" in text
    assert "✎ [Genesis Guild #general] Consensus Playground [BOT] ↳ alice used /play buttons (edited) (msg 1)\n  Bumped 1 time(s) by bob\n" in text
    assert "suggestions for carol in /play pick:\n  1) banana x1  → 'banana'" in text
    assert "Consensus Playground is thinking…" in text and "Mining... 2/2" in text
    assert "⚓ webhook 'Chain Feed' created in #general" in text
    assert "Chain Feed [WEBHOOK]" in text and "│ **Block 3**" in text
    assert "✗ /nope is not registered in Genesis Guild" in text
    assert "✗ 'mallory' is not a member of Genesis Guild" in text
    assert "✗ message (msg 1) has 3 button(s); there is no 99" in text
    assert "option 'number': invalid literal" in text
    assert "✗ start with who is speaking" in text
    assert "/play echo number:integer word:text [who:@member]" in text
    assert "/play pick fruit:text… [count:integer]" in text
    assert "[Genesis Guild #blocks] Consensus Playground [BOT] ↳ alice used /play upload\n  chain export\n  📎 chain.csv (text/csv, 21 bytes)" in text
    assert len(term.handles) == 7 and all(h.acknowledged for h in term.handles)


async def test_terminal_reports_unanswered_interactions_and_forms(sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot) -> None:
    sb.ack_deadline = 0.2
    out = io.StringIO()
    await run_terminal(sb, lines("alice: /play slow seconds:0.5", ":wait 1"), out, banner=False)
    assert "✗ alice: The application did not respond" in out.getvalue()
    assert "⚠ bot request POST /interactions/{interaction_id}/{interaction_token}/callback → 404 Unknown interaction (code 10062)" in out.getvalue()

    sb.ack_deadline = 3.0
    out = io.StringIO()
    await run_terminal(sb, lines("bob: /play form", ":wait", 'bob: !submit block_name="Big One"', ":wait"), out, banner=False)
    text = out.getvalue()
    assert "opened a form for bob" in text and "Block name (required)  → field id 'block_name'" in text
    assert "↳ bob submitted a form\n  Named block: Big One" in text


def test_describe_command_flattens_groups() -> None:
    cmd = {
        "name": "wallet",
        "description": "Wallet",
        "options": [
            {"type": 1, "name": "pay", "description": "Pay", "options": [
                {"type": 6, "name": "member", "description": "to", "required": True},
                {"type": 4, "name": "amount", "description": "how much", "required": True},
            ]},
            {"type": 2, "name": "admin", "description": "Admin", "options": [
                {"type": 1, "name": "mint", "description": "Mint", "options": []},
            ]},
        ],
    }
    assert describe_command(cmd) == [
        "/wallet pay member:@member amount:integer   — Pay",
        "/wallet admin mint   — Mint",
    ]
