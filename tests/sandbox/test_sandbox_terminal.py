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
    msg = sb.create_message(
        world.blocks, webhook.author_for(None), KIND_WEBHOOK, payload, [], source="test", webhook_id=webhook.id
    )
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
    assert (
        "✎ [Genesis Guild #general] Consensus Playground [BOT] ↳ alice used /play buttons (edited) (msg 1)\n  Bumped "
        "1 time(s) by bob\n"
        in text
    )
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
    assert (
        "[Genesis Guild #blocks] Consensus Playground [BOT] ↳ alice used /play upload\n  chain export\n  📎 chain.csv "
        "(text/csv, 21 bytes)"
        in text
    )
    assert len(term.handles) == 7 and all(h.acknowledged for h in term.handles)


async def test_terminal_reports_unanswered_interactions_and_forms(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    sb.ack_deadline = 0.2
    out = io.StringIO()
    await run_terminal(sb, lines("alice: /play slow seconds:0.5", ":wait 1"), out, banner=False)
    assert "✗ alice: The application did not respond" in out.getvalue()
    assert (
        "⚠ bot request POST /interactions/{interaction_id}/{interaction_token}/callback → 404 "
        "Unknown interaction (code 10062)"
        in out.getvalue()
    )

    sb.ack_deadline = 3.0
    out = io.StringIO()
    await run_terminal(
        sb, lines("bob: /play form", ":wait", 'bob: !submit block_name="Big One"', ":wait"), out, banner=False
    )
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


# --- issue 9 item 16: the terminal a newcomer plays in -----------------------------------


async def test_press_n_means_the_nth_button_of_the_last_message_with_buttons(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    out = io.StringIO()
    script = lines(
        "alice: /play buttons", ":wait",
        "alice: /play buttons", ":wait",
        "bob: !press 1", ":wait",       # the second counter: the last message with buttons
        "carol: !press 1@1", ":wait",   # the first counter, by its (msg 1) number
        # By label, on the last message with buttons: carol's press edited (msg 1), which
        # printed it again at the bottom of the screen.
        "carol: !press Bump", ":wait",
        "carol: !press 1@2", ":wait",
    )
    await run_terminal(sb, script, out, banner=False)
    text = out.getvalue()
    first, second = [m for m in sb.channel_messages(world.general) if m.components]
    assert bot.clicks == [("bob", second.id), ("carol", first.id), ("carol", first.id), ("carol", second.id)]
    # Both messages number their own buttons from 1, and say their short number.
    assert text.count("[1 Bump] [2 Later] [3 Shout]") == 2
    assert "↳ alice used /play buttons (msg 1)" in text and "↳ alice used /play buttons (msg 2)" in text


async def test_press_skips_messages_the_member_cannot_see(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    out = io.StringIO()
    script = lines("alice: /play buttons", ":wait", "dave@guild2: !press 1", "bob: !press 9")
    await run_terminal(sb, script, out, banner=False)
    text = out.getvalue()
    assert "✗ no message with buttons dave can see on screen yet" in text
    assert "✗ message (msg 1) has 3 button(s); there is no 9" in text
    assert bot.clicks == []


async def test_a_press_is_shown_by_its_label_not_its_custom_id(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    out = io.StringIO()
    await run_terminal(sb, lines("alice: /play buttons", ":wait", "alice: !press 3", ":wait"), out, banner=False)
    text = out.getvalue()
    assert "↳ alice pressed [Shout] (only alice can see this)\n  alice shouted!" in text
    assert "'shout'" not in text


async def test_an_edit_prints_only_the_lines_that_changed(sb: Sandbox, world: DemoWorld) -> None:
    from sandbox.terminal import Terminal

    out = io.StringIO()
    term = Terminal(sb, out)
    sb.add_listener(term.on_event)
    webhook = sb.create_webhook(world.blocks, "Chain Feed")
    fields = [{"name": name, "value": "0", "inline": False} for name in ("Hashes", "Rate", "Best", "Share")]
    payload = {"embeds": [{"title": "Mining block 1", "description": "progress", "fields": fields}]}
    start = len(out.getvalue())
    msg = sb.create_message(
        world.blocks, webhook.author_for(None), KIND_WEBHOOK, payload, [], source="test", webhook_id=webhook.id
    )
    full = out.getvalue()
    assert full[start:].count("\n") == 11  # header, title, description, 4 × (name, value)

    fields[0]["value"] = "12,345"
    sb.edit_message(
        msg, {"embeds": [{"title": "Mining block 1", "description": "progress", "fields": fields}]}, [], source="test"
    )
    edit = out.getvalue()[len(full):]
    assert edit == "✎ [Genesis Guild #blocks] Chain Feed [WEBHOOK] (edited)\n  │   12,345\n"

    sb.edit_message(
        msg, {"embeds": [{"title": "Mining block 1", "description": "progress", "fields": fields}]}, [], source="test"
    )
    assert out.getvalue() == full + edit  # nothing visible changed: nothing printed

    sb.edit_message(msg, {"content": "Block 1 found!", "embeds": []}, [], source="test")
    # Hardly anything kept: printed whole, as a new message would be.
    assert (
        out.getvalue()[len(full + edit) :]
        == "✎ [Genesis Guild #blocks] Chain Feed [WEBHOOK] (edited)\n  Block 1 found!\n"
    )
    sb.remove_listener(term.on_event)


async def test_save_writes_the_attachment_bytes_to_a_file(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot, tmp_path
) -> None:
    out = io.StringIO()
    saved = tmp_path / "saved"
    script = lines(
        "alice: !save",
        "alice: /play upload", ":wait",
        "alice: !save",
        ":save",
        f":save 1 {tmp_path / 'mine.csv'}",
        f":save 1 {tmp_path / 'mine.csv'}",
    )
    await run_terminal(sb, script, out, banner=False, save_dir=saved)
    text = out.getvalue()
    assert "✗ no message with files alice can see on screen yet" in text
    data = b"height,hash\n1,000abc\n"
    assert (saved / "chain.csv").read_bytes() == data
    assert (saved / "chain-2.csv").read_bytes() == data  # never overwritten
    assert (tmp_path / "mine.csv").read_bytes() == data
    assert f"💾 saved chain.csv (21 bytes) to {saved / 'chain.csv'}" in text
    assert f"✗ {tmp_path / 'mine.csv'} already exists; give another path" in text
    assert oct((saved / "chain.csv").stat().st_mode & 0o777) == "0o600"


async def test_who_says_who_is_admin_where(sb: Sandbox, world: DemoWorld) -> None:
    out = io.StringIO()
    await run_terminal(sb, lines(":who"), out, banner=False)
    text = out.getvalue()
    assert "  Genesis Guild (guild1): alice (admin), bob, carol; channels #general #blocks; type  alice: /help" in text
    assert "  Fork Town (guild2): bob (admin), dave; channels #general #mempool; type  bob@guild2: /help" in text
    assert "  alice: in Genesis Guild; admin of Genesis Guild; not a member of Fork Town" in text
    assert "  bob: in Genesis Guild, Fork Town; admin of Fork Town" in text
    assert "  carol: in Genesis Guild; admin nowhere; not a member of Fork Town" in text


async def test_wait_for_waits_for_text_printed_since_the_last_action(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot
) -> None:
    out = io.StringIO()
    script = lines("alice: /play progress steps:2", ':wait for "Mined!" 10', "# a comment", "alice: /play secret",
                   ":wait for Mined! 0.2")
    await run_terminal(sb, script, out, banner=False)
    text = out.getvalue()
    assert "Mined!" in text
    assert text.count("✗") == 1 and "✗ waited 0.2s and 'Mined!' did not appear" in text


def test_changed_lines_lists_new_changed_and_removed_lines() -> None:
    from sandbox.render import changed_lines

    before = ["  a", "  b", "  c", "  [1 Yes] [2 No]"]
    assert changed_lines(before, ["  a", "  B", "  c", "  [1 Yes] [2 No]"]) == ["  B"]
    assert changed_lines(before, ["  a", "  b", "  c"]) == ["  (removed) [1 Yes] [2 No]"]
    assert changed_lines(before, ["  a", "  b", "  c", "  d", "  [1 Yes] [2 No]"]) == ["  d"]
    assert changed_lines(before, ["  x"]) == ["  x"]  # a rewrite: whole
    assert changed_lines(before, before) == []


async def test_save_to_a_path_that_cannot_be_written_is_an_error_line(
    sb: Sandbox, world: DemoWorld, bot: PlaygroundTestBot, tmp_path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = io.StringIO()
    script = lines("alice: /play upload", ":wait", f"alice: !save 1 {blocker / 'x.csv'}", "alice: !save")
    await run_terminal(sb, script, out, banner=False, save_dir=blocker / "saved")
    text = out.getvalue()
    assert f"✗ cannot write {blocker / 'x.csv'}: " in text
    assert f"✗ cannot write {blocker / 'saved' / 'chain.csv'}: " in text  # the terminal plays on


def test_discord_timestamps_render_as_a_client_shows_them():
    """`<t:…:R>` is how the bot says "when" (issue 9 item 7); the terminal shows it as Discord's
    client does (developer docs, Message Formatting: styles t T d D f F R) instead of raw markup."""
    from sandbox.render import format_timestamp

    now = 1_700_000_000
    assert format_timestamp(now + 174, "R", now=now) == "in 2 minutes"
    assert format_timestamp(now + 60, "R", now=now) == "in 1 minute"
    assert format_timestamp(now - 7_200, "R", now=now) == "2 hours ago"
    assert format_timestamp(now + 3 * 86_400, "R", now=now) == "in 3 days"
    assert format_timestamp(now, "R", now=now) == "now"
    assert format_timestamp(0, "f") == "01 January 1970 00:00 UTC"
    assert format_timestamp(3_723, "T") == "01:02:03 UTC"
    assert format_timestamp(0, "d") == "1970-01-01 UTC"
