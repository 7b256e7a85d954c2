"""What the classroom dashboard shows: public facts of one server's chain, as plain JSON values.

Everything a viewer receives (the state and every event of the stream) is built here, field by
field, from the façade's read models: never a raw outbox payload, never a whole object.

Public (shown): what the server's channel already shows its members: the server's name, members'
display names, blocks (height, hash, miner, time, how many transfers), amounts and fees of
payments, mining progress, validators (their stake and whether they voted), checkpoints, and each
announcement's text as the webhook posts it.  Private (never shown, never read here): wallet
keys and sealed secrets, the master key and the link key, the bot token, webhook URLs and tokens,
member ids beyond the last four digits of a member whose name the bot has not seen, DMs.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from bot.storage import OutboxEvent
from chain.events import BlockMined, CheckpointFinalized, CheckpointJustified
from chain.hashing import hash_to_display
from chain.mode import Mode
from chain.playground import Playground, ValidatorView
from chain.pos.rewards import UNITS_PER_POINT
from cogs.embeds import event_embed
from cogs.services import BOT_OWNER_NAMES

BLOCKS_SHOWN = 10
MEMPOOL_SHOWN = 8
VALIDATORS_SHOWN = 30
NAME_MAX_CHARS = 32
TEXT_MAX_CHARS = 400
HASH_SHOWN_CHARS = 16
# Display names the bot remembers (learned from members' commands), over every server.
NAMES_KEPT = 50_000


def clean_text(text: str, limit: int) -> str:
    """One line of plain text: control characters out, Discord's markdown marks out, at most ``limit``."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    text = text.replace("**", "").replace("`", "").replace("__", "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NameBook:
    """Members' display names, learned from their commands (the bot has no member list: it asks for
    no privileged intent), most recent first; a name not seen yet shows as "member ·1234"."""

    def __init__(self, capacity: int = NAMES_KEPT) -> None:
        self._names: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._capacity = capacity

    def learn(self, guild_id: int, member_id: int | str, name: str) -> None:
        key = (guild_id, str(member_id))
        self._names[key] = clean_text(name, NAME_MAX_CHARS) or "a member"
        self._names.move_to_end(key)
        while len(self._names) > self._capacity:
            self._names.popitem(last=False)

    def name(self, guild_id: int, owner: str) -> str:
        if owner in BOT_OWNER_NAMES:
            return BOT_OWNER_NAMES[owner]
        known = self._names.get((guild_id, owner))
        if known is not None:
            return known
        if not owner:
            return "the bot"
        return f"member ·{owner[-4:]}"


class ChainView:
    """Builds one server's dashboard JSON from the façade; caches the public-key owners per chain."""

    def __init__(self, playground: Playground, names: NameBook, *, chart_kinds: Sequence[str] = ()) -> None:
        self.playground = playground
        self.names = names
        self.chart_kinds = tuple(chart_kinds)

    async def owners(self, chain_id: int) -> Mapping[bytes, str]:
        # The engine keeps a loaded chain's owners in memory: no database read.
        return await self.playground.owners(chain_id)

    def _key_name(self, chain_id: int, owners: Mapping[bytes, str], pubkey: bytes) -> str:
        owner = owners.get(pubkey)
        if owner is None:
            return f"key {pubkey.hex()[:8]}…"  # a public key on a public chain, nobody's name
        return self.names.name(chain_id, owner)

    async def display_names(self, chain_id: int) -> dict[bytes, str]:
        owners = await self.owners(chain_id)
        return {key: self.names.name(chain_id, owner) for key, owner in owners.items()}

    # --- the state: what a page shows when it opens, and again after each block ---------------

    async def state(self, chain_id: int, guild_name: str, chart_alts: Mapping[str, str]) -> dict[str, Any]:
        playground = self.playground
        base: dict[str, Any] = {
            "server": clean_text(guild_name, 64),
            "charts": [
                {"kind": kind, "alt": clean_text(chart_alts.get(kind, f"{kind} chart of this server's chain"),
                                                 TEXT_MAX_CHARS)}
                for kind in self.chart_kinds
            ],
        }
        if not playground.has_chain(chain_id):
            reason = playground.offline_reason(chain_id)
            base["chain"] = None
            base["message"] = (
                "This server's chain could not be loaded: an admin starts it over with /playground reset."
                if reason is not None else "No chain yet: it starts with the server's first command."
            )
            return base
        status = playground.status(chain_id)
        state = status.state
        owners = await self.owners(chain_id)
        blocks = await playground.recent_blocks(chain_id, BLOCKS_SHOWN)
        base["chain"] = {
            "mode": status.mode.value if status.mode is not None else "pow",
            "merged": status.merged,
            "height": state.height,
            "tip": hash_to_display(state.tip_hash)[:HASH_SHOWN_CHARS],
            "block_time_s": state.params.target_spacing_s,
            "difficulty": playground.difficulty(state.tip.bits, state.params),
        }
        base["blocks"] = [
            {
                "height": b.height,
                "hash": hash_to_display(b.block_hash)[:HASH_SHOWN_CHARS],
                "miner": "genesis" if b.height == 0 else self._key_name(chain_id, owners, b.miner),
                "transfers": b.transfers,
                "time": b.time,
                "pos": b.proof_of_stake,
            }
            for b in blocks
        ]
        base.update(await self.live(chain_id))
        return base

    # --- the live part: what changes between blocks, read from memory only ---------------------

    async def live(self, chain_id: int) -> dict[str, Any]:
        playground = self.playground
        if not playground.has_chain(chain_id):
            return {"tip": None}
        state = playground.state(chain_id)
        race = playground.mining_race(chain_id) if not playground.mining_is_over(chain_id) else None
        pending = playground.pending_transfers(chain_id, MEMPOOL_SHOWN)
        owners = await self.owners(chain_id)
        live: dict[str, Any] = {
            "tip": hash_to_display(state.tip_hash)[:HASH_SHOWN_CHARS],
            "race": None if race is None else {
                "height": race.height,
                "expected_hashes": race.expected_hashes,
                "miners": [
                    {
                        "name": self.names.name(chain_id, e.owner),
                        "hashes": e.hashes_tried,
                        "share": e.share_percent,
                        "elapsed_s": e.elapsed_s,
                        # Of the hashes a block takes on average; past 100% it is still a lottery.
                        "percent": min(999, e.hashes_tried * 100 // race.expected_hashes)
                        if race.expected_hashes else 0,
                    }
                    for e in race.entries
                ],
            },
            "mempool": {
                "count": playground.status(chain_id).pending_transfers,
                "recent": [
                    {
                        "from": self._key_name(chain_id, owners, e.tx.sender),
                        "to": self._key_name(chain_id, owners, e.tx.recipient),
                        "amount": e.tx.amount,
                        "fee": e.tx.fee,
                    }
                    for e in pending
                ],
            },
            "staking": self._staking(chain_id),
        }
        return live

    def _staking(self, chain_id: int) -> dict[str, Any] | None:
        playground = self.playground
        mode = playground.mode(chain_id)
        if mode is None:
            return None
        validators = playground.validators(chain_id)
        if mode is Mode.POW and not validators:
            return None  # proof of work with nobody staked yet: nothing to show
        progress = playground.vote_progress(chain_id)
        finality = playground.finality(chain_id)
        return {
            "epoch": progress.epoch,
            "votes_percent": progress.percent,
            "attesting_points": progress.attesting_units // UNITS_PER_POINT,
            "active_points": progress.total_active_units // UNITS_PER_POINT,
            "justifies": progress.justifies,
            "justified_epoch": finality.justified_epoch,
            "finalized_epoch": finality.finalized_epoch,
            "in_leak": finality.in_leak,
            "validators_total": len(validators),
            "validators": [self._validator(chain_id, v) for v in validators[:VALIDATORS_SHOWN]],
        }

    def _validator(self, chain_id: int, v: ValidatorView) -> dict[str, Any]:
        return {
            "index": v.index,
            "name": self.names.name(chain_id, v.owner) if v.owner is not None else f"validator #{v.index}",
            "status": v.status.value,
            "stake_points": v.effective_balance_units // UNITS_PER_POINT,
            "voted": v.voted_current_epoch,
            "slashed": v.slashed,
        }

    # --- events: the outbox's rows as the page's news line ------------------------------------

    def event(self, event: OutboxEvent, names: Mapping[bytes, str]) -> dict[str, Any]:
        """One outbox event as the page shows it: the announcement's title and text (as the webhook
        posts them in the channel, with display names), and the few fields the page acts on."""
        embed = event_embed(event.event, names)
        out: dict[str, Any] = {
            "id": event.id,
            "kind": event.kind,
            "title": clean_text(embed.title or event.kind.replace("_", " "), TEXT_MAX_CHARS),
            "text": clean_text(embed.description or "", TEXT_MAX_CHARS),
        }
        payload = event.event
        if isinstance(payload, BlockMined):
            out["height"] = payload.height
            out["hash"] = hash_to_display(payload.hash)[:HASH_SHOWN_CHARS]
        elif isinstance(payload, CheckpointJustified | CheckpointFinalized):
            out["epoch"] = payload.epoch
        return out
