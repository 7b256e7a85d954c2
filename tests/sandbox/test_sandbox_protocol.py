"""The wire protocol without discord.py: raw REST calls and a hand-written gateway client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox import Sandbox, SandboxError, point_discord_py_at
from sandbox.demo import DemoWorld


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sb: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bot {sb.bot_token}"}


async def test_loopback_only(sb: Sandbox) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="0.0.0.0")
    with pytest.raises(ValueError, match="non-loopback"):
        point_discord_py_at("https://discord.com/api/v10", "wss://gateway.discord.gg/")
    assert sb.api_base.startswith("http://127.0.0.1:") and sb.gateway_url.startswith("ws://127.0.0.1:")


async def test_auth_content_type_and_unknown_routes(sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sb.api_base}/users/@me") as resp:
        assert resp.status == 401 and await resp.json() == {"message": "401: Unauthorized", "code": 0}
    async with http.get(f"{sb.api_base}/users/@me", headers=auth(sb)) as resp:
        # discord.py parses JSON only when the header is exactly this.
        assert resp.headers["Content-Type"] == "application/json"
        assert (await resp.json())["id"] == str(sb.bot_user.id)
        assert resp.headers["X-RateLimit-Bucket"] and resp.headers["Via"]
    async with http.get(f"{sb.api_base}/voice/regions", headers=auth(sb)) as resp:
        assert resp.status == 404
    unknown = sb.requests[-1]
    assert unknown.path == "/voice/regions" and unknown.route is None and unknown.status == 404


async def test_webhook_rest_validation_multipart_and_tokens(
    sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sb.api_base}/channels/{world.general.id}/webhooks", json={"name": "Feed"}, headers=auth(sb)
    ) as resp:
        assert resp.status == 200
        hook = await resp.json()
    base = f"{sb.api_base}/webhooks/{hook['id']}/{hook['token']}"
    too_many = {"embeds": [{"title": str(i)} for i in range(11)]}
    async with http.post(base, json=too_many, params={"wait": "1"}) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["code"] == 50035 and "embeds" in body["errors"]
    async with http.post(base, json={"content": ""}, params={"wait": "1"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 50006
    async with http.post(base, json={"embeds": ["not an object"]}, params={"wait": "1"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 50035
    async with http.post(f"{sb.api_base}/webhooks/{hook['id']}/{'x' * 68}", json={"content": "hi"}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == 50027

    form = aiohttp.FormData(quote_fields=False)
    form.add_field(
        "payload_json", json.dumps({"content": "export", "attachments": [{"id": 0, "filename": "chain.json"}]})
    )
    form.add_field("files[0]", b'{"height": 7}', filename="chain.json", content_type="application/octet-stream")
    async with http.post(base, data=form, params={"wait": "true"}) as resp:
        assert resp.status == 200
        message = await resp.json()
    assert message["attachments"][0]["filename"] == "chain.json"
    (posted,) = sb.webhook_feed(world.general)
    assert posted.attachments[0].data == b'{"height": 7}' and posted.attachments[0].content_type == "application/json"
    async with http.post(base, json={"content": "no wait"}) as resp:
        assert resp.status == 204
    assert [m.content for m in sb.webhook_feed(world.general)] == ["export", "no wait"]

    async with http.delete(base) as resp:
        assert resp.status == 204
    async with http.post(base, json={"content": "gone"}) as resp:
        assert resp.status == 404 and await resp.json() == {"message": "Unknown Webhook", "code": 10015}


async def test_rate_limit_response_shape(sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession) -> None:
    sb.faults.rate_limit("GET /guilds/*", times=1, retry_after=1.5)
    async with http.get(f"{sb.api_base}/guilds/{world.genesis.id}", headers=auth(sb)) as resp:
        assert resp.status == 429
        assert await resp.json() == {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert float(resp.headers["X-RateLimit-Reset-After"]) == 1.5
        assert resp.headers["Via"]  # without it discord.py assumes a Cloudflare ban and gives up
    async with http.get(f"{sb.api_base}/guilds/{world.genesis.id}", headers=auth(sb)) as resp:
        assert resp.status == 200 and (await resp.json())["name"] == "Genesis Guild"


async def test_command_definitions_are_validated(sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession) -> None:
    url = f"{sb.api_base}/applications/{sb.application_id}/commands"
    bad = [{"name": "Mine", "description": "x", "type": 1}, {"name": "ok", "description": "", "type": 1}]
    async with http.put(url, json=bad, headers=auth(sb)) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["code"] == 50035
        assert set(body["errors"]) == {"0", "1"}
    assert sb.commands.global_syncs == 0


class RawGateway:
    """Just enough of a gateway client to drive the protocol by hand."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_json({"op": op, "d": d})

    async def until(self, event: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("t") == event:
                return frame


async def test_raw_gateway_protocol_and_interaction_callbacks(
    sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
        gw = RawGateway(ws)
        hello = await gw.recv()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
        await gw.send(1, None)
        assert (await gw.recv())["op"] == 11
        await gw.send(2, {"token": "wrong", "intents": 0, "properties": {}})
        closing = await ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4004

    async with http.ws_connect(sb.gateway_url + "?v=10&encoding=json") as ws:
        gw = RawGateway(ws)
        await gw.recv()
        members_intent = 1 << 1
        await gw.send(2, {"token": sb.bot_token, "intents": 1 | members_intent, "properties": {}})
        ready = await gw.recv()
        assert ready["t"] == "READY" and ready["s"] == 1
        assert [g["unavailable"] for g in ready["d"]["guilds"]] == [True, True]
        created = [await gw.recv(), await gw.recv()]
        assert [f["t"] for f in created] == ["GUILD_CREATE", "GUILD_CREATE"] and [f["s"] for f in created] == [2, 3]
        genesis = created[0]["d"]
        # With GUILD_MEMBERS every member is included; the bot's managed role carries tags.bot_id.
        assert {m["user"]["username"] for m in genesis["members"]} >= {"alice", "bob", "carol"}
        assert genesis["member_count"] == len(world.genesis.members)
        bot_role = next(r for r in genesis["roles"] if r.get("tags"))
        assert bot_role["tags"] == {"bot_id": str(sb.bot_user.id)} and bot_role["managed"]

        # Commands must be synced before a member can use them.
        with pytest.raises(SandboxError, match="not registered"):
            await sb.invoke(world.genesis, world.general, world.alice, "hello")
        cmds = [{"name": "hello", "description": "Say hi", "type": 1}]
        async with http.put(
            f"{sb.api_base}/applications/{sb.application_id}/commands", json=cmds, headers=auth(sb)
        ) as resp:
            assert resp.status == 200

        handle = await sb.invoke(world.genesis, world.general, world.alice, "hello")
        event = await gw.until("INTERACTION_CREATE")
        assert event["d"]["id"] == str(handle.id) and event["d"]["data"]["name"] == "hello"

        # A followup before any acknowledgement does not exist yet.
        async with http.post(
            f"{sb.api_base}/webhooks/{sb.application_id}/{handle.token}", json={"content": "early"}
        ) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10015
        callback = f"{sb.api_base}/interactions/{handle.id}/{handle.token}/callback"
        async with http.post(callback, json={"type": 8, "data": {"choices": []}}) as resp:
            assert resp.status == 400  # autocomplete result is not valid for a slash command
        answer = {"type": 4, "data": {"content": "hi!", "flags": 64}}
        async with http.post(callback, json=answer, params={"with_response": "1"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["interaction"] == {
            "id": str(handle.id),
            "type": 2,
            "response_message_id": str(handle.response.id) if handle.response else None,
            "response_message_loading": False,
            "response_message_ephemeral": True,
        }
        assert body["resource"]["type"] == 4 and body["resource"]["message"]["content"] == "hi!"
        async with http.post(callback, json=answer) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
        assert handle.ephemeral and handle.content == "hi!"
        assert [c.accepted for c in handle.callbacks] == [False, True, False]

        # RESUME with an unknown session is refused with INVALID_SESSION(false).
        async with http.ws_connect(sb.gateway_url) as ws2:
            gw2 = RawGateway(ws2)
            await gw2.recv()
            await gw2.send(6, {"token": sb.bot_token, "session_id": "nope", "seq": 1})
            invalid = await gw2.recv()
            assert invalid["op"] == 9 and invalid["d"] is False


async def identify(sb: Sandbox, http: aiohttp.ClientSession) -> tuple[aiohttp.ClientWebSocketResponse, RawGateway]:
    ws = await http.ws_connect(sb.gateway_url)
    gw = RawGateway(ws)
    await gw.recv()
    await gw.send(2, {"token": sb.bot_token, "intents": 1, "properties": {}})
    await gw.until("READY")
    return ws, gw


async def test_original_response_and_followup_routes(
    sb: Sandbox, world: DemoWorld, http: aiohttp.ClientSession
) -> None:
    ws, gw = await identify(sb, http)
    try:
        cmds = [{"name": "hello", "description": "Say hi", "type": 1}]
        async with http.put(f"{sb.api_base}/applications/{sb.application_id}/commands", json=cmds, headers=auth(sb)):
            pass
        handle = await sb.invoke(world.genesis, world.general, world.alice, "hello")
        callback = f"{sb.api_base}/interactions/{handle.id}/{handle.token}/callback"
        hook = f"{sb.api_base}/webhooks/{sb.application_id}/{handle.token}"
        async with http.post(callback, json={"type": 5, "data": {"flags": 64}}) as resp:
            assert resp.status == 204  # without ?with_response Discord returns no body
        assert handle.deferred and handle.ephemeral and handle.response is not None and handle.response.loading
        async with http.get(f"{hook}/messages/@original") as resp:
            assert resp.status == 200 and (await resp.json())["flags"] == 64 | 128
        async with http.patch(
            f"{hook}/messages/@original", json={"content": "done", "embeds": [{"title": "t"}]}
        ) as resp:
            assert resp.status == 200 and (await resp.json())["flags"] == 64
        async with http.post(hook, json={"content": "first followup"}, params={"wait": "1"}) as resp:
            followup = await resp.json()
        assert [m.content for m in handle.followups] == ["first followup"]  # placeholder was already replaced
        async with http.patch(f"{hook}/messages/{followup['id']}", json={"content": "edited followup"}) as resp:
            assert resp.status == 200
        assert [r.content for r in handle.followups[0].revisions] == ["first followup", "edited followup"]
        async with http.patch(f"{hook}/messages/@original", json={"content": "", "embeds": []}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50006  # cannot empty a message
        async with http.delete(f"{hook}/messages/@original") as resp:
            assert resp.status == 204
        assert handle.original_deleted and handle.response is not None and handle.response.deleted
        async with http.get(f"{hook}/messages/@original") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10008

        # Channel webhooks are listed per channel and need MANAGE_WEBHOOKS.
        async with http.post(
            f"{sb.api_base}/channels/{world.blocks.id}/webhooks", json={"name": "Feed"}, headers=auth(sb)
        ) as resp:
            created = await resp.json()
        async with http.get(f"{sb.api_base}/channels/{world.blocks.id}/webhooks", headers=auth(sb)) as resp:
            assert [w["id"] for w in await resp.json()] == [created["id"]]
        async with http.get(f"{sb.api_base}/channels/{world.general.id}/webhooks", headers=auth(sb)) as resp:
            assert await resp.json() == []
        async with http.post(
            f"{sb.api_base}/channels/{world.blocks.id}/webhooks", json={"name": "discord feed"}, headers=auth(sb)
        ) as resp:
            assert resp.status == 400
        sb.set_bot_permissions(world.genesis, manage_webhooks=False)
        async with http.get(f"{sb.api_base}/channels/{world.blocks.id}/webhooks", headers=auth(sb)) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == 50013
        # The role change went out on the gateway too.
        update = await gw.until("GUILD_ROLE_UPDATE")
        assert update["d"]["role"]["tags"] == {"bot_id": str(sb.bot_user.id)}
    finally:
        await ws.close()
