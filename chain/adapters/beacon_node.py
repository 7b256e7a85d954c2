"""The proof-of-stake side of the node: validators, votes, slots, slashing and the Merge.

``BeaconNode`` sits beside ``chain.adapters.node.Node`` (which owns chains, wallets,
the mempool, the op pool and block persistence) and drives what a consensus
client does for the validators the bot custodies.  It is the composition root of
its parts, one module per concern, which all share one ``BeaconChains`` (the node,
the signer, the store, the slot locks and the per-chain memory):

- ``staking``: a deposit is signed by the member's wallet key and their validator
  key and waits in the op pool for the next block; an exit likewise;
- ``votes``: every signed vote the node sees goes through the ``SlashingDetector``;
  evidence it finds goes into the op pool, so the next block slashes the offender;
  members vote on demand or automatically (auto-attest);
- ``slot_driver``: ``on_slot`` settles the previous slot (the fork choice's winner
  among the slot's candidate blocks is appended to the chain), then has the slot's
  drawn proposer sign a block from the mempool and op pool, and lets validators with
  auto-attest on vote for it; the per-server block budget;
- ``slashing_reports``: evidence members hand in, and their slashing-protection record;
- ``beacon_lifecycle``: resets, mode switches, and ``schedule_merge``, which has the
  next proof-of-work block commit to the Merge;
- ``beacon_status``: the read views (validators, vote progress, finality, slots, draws);
- ``energy``: the energy report.

The methods below only hand each call to the part that owns it, so callers (the
façade, the bot, the tests) keep one object per bot.  Keys are custodied by
``chain.adapters.signer.ValidatorSigner``, which refuses to sign anything slashable
(EIP-3076) unless the server is in chaos mode and the member asked for it.  Nothing
here reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

from typing import Any

from chain.adapters.beacon_lifecycle import BeaconLifecycle
from chain.adapters.beacon_runtime import BeaconChains
from chain.adapters.beacon_status import BeaconStatus, FinalityView, ValidatorView, VoteProgress
from chain.adapters.budget import DEFAULT_BLOCKS_PER_HOUR
from chain.adapters.energy import DEFAULT_MILLIWATTS_PER_CORE, EnergyMeter, EnergyReport
from chain.adapters.head_choice import HeadChoice
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.slashing_reports import SlashingReports
from chain.adapters.slot_driver import SlotDriver, SlotOutcome
from chain.adapters.stake_requests import StakeRequests
from chain.adapters.votes import VoteReceipt, Votes
from chain.consensus.block import Block
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.attestation import AttesterSlashing, ProposerSlashing
from chain.pos.beacon import ConsensusConfig
from chain.pos.proposer import ProposerDraw


class BeaconNode:
    """The consensus client of every server's chain: its parts, built once and sharing one ``BeaconChains``."""

    def __init__(
        self, node: Node, signer: ValidatorSigner, *, milliwatts_per_core: int = DEFAULT_MILLIWATTS_PER_CORE,
        blocks_per_hour: int = DEFAULT_BLOCKS_PER_HOUR,
    ) -> None:
        if milliwatts_per_core < 1:
            raise ValueError(f"a core draws some power; got {milliwatts_per_core} mW")
        self.node = node
        self.signer = signer
        self.chains = BeaconChains(node, signer)
        self.status = BeaconStatus(self.chains)
        self.stake_requests = StakeRequests(self.chains, self.status)
        self.heads = HeadChoice(self.chains)
        self.votes = Votes(self.chains, self.status, self.heads)
        self.slots = SlotDriver(self.chains, self.status, self.votes, self.heads, blocks_per_hour=blocks_per_hour)
        self.reports = SlashingReports(self.chains)
        self.lifecycle = BeaconLifecycle(self.chains)
        self.energy_meter = EnergyMeter(node.store, milliwatts_per_core)

    @property
    def milliwatts_per_core(self) -> int:
        return self.energy_meter.milliwatts_per_core

    @property
    def blocks_per_hour(self) -> int:
        return self.slots.blocks_per_hour

    # --- chains (beacon_runtime) -------------------------------------------------------------

    async def load(self) -> None:
        await self.chains.load()

    async def validator_owners(self, chain_id: int) -> dict[bytes, str]:
        return await self.chains.validator_owners(chain_id)

    def forget(self, chain_id: int) -> None:
        self.chains.forget(chain_id)

    def consensus_chain_ids(self) -> list[int]:
        return self.chains.consensus_chain_ids()

    # --- reads (beacon_status) ---------------------------------------------------------------

    def mode(self, chain_id: int) -> Mode | None:
        return self.status.mode(chain_id)

    def is_merged(self, chain_id: int) -> bool:
        return self.status.is_merged(chain_id)

    def config(self, chain_id: int) -> ConsensusConfig:
        return self.status.config(chain_id)

    def current_epoch(self, chain_id: int) -> int:
        return self.status.current_epoch(chain_id)

    def finality(self, chain_id: int) -> FinalityView:
        return self.status.finality(chain_id)

    def current_slot(self, chain_id: int, now: int) -> int:
        return self.status.current_slot(chain_id, now)

    def slot_time(self, chain_id: int, slot: int) -> int:
        return self.status.slot_time(chain_id, slot)

    def validators(self, chain_id: int) -> list[ValidatorView]:
        return self.status.validators(chain_id)

    async def validator(self, chain_id: int, owner: str) -> ValidatorView | None:
        return await self.status.validator(chain_id, owner)

    def pending_deposit_points(self, chain_id: int, wallet: bytes) -> int:
        return self.status.pending_deposit_points(chain_id, wallet)

    def progress(self, chain_id: int, now: int | None = None) -> VoteProgress:
        return self.status.progress(chain_id, now)

    def proposer_draw(self, chain_id: int, slot: int) -> ProposerDraw:
        return self.status.proposer_draw(chain_id, slot)

    # --- staking, votes, evidence --------------------------------------------------------------

    async def deposit(self, chain_id: int, owner: str, amount_points: int) -> ValidatorView | None:
        return await self.stake_requests.deposit(chain_id, owner, amount_points)

    async def withdraw(self, chain_id: int, owner: str) -> ValidatorView:
        return await self.stake_requests.withdraw(chain_id, owner)

    async def set_auto_attest(self, chain_id: int, owner: str, on: bool) -> None:
        await self.votes.set_auto_attest(chain_id, owner, on)

    async def attest(
        self, chain_id: int, owner: str, *, head_root: bytes | None = None, double_vote: bool = False,
        now: int | None = None,
    ) -> VoteReceipt:
        return await self.votes.attest(chain_id, owner, head_root=head_root, double_vote=double_vote, now=now)

    async def report(self, chain_id: int, evidence_hex: str) -> AttesterSlashing | ProposerSlashing:
        return await self.reports.report(chain_id, evidence_hex)

    async def protection(self, chain_id: int, owner: str) -> dict[str, Any]:
        return await self.reports.protection(chain_id, owner)

    # --- slots (slot_driver) -------------------------------------------------------------------

    async def on_slot(self, chain_id: int, now: int) -> SlotOutcome | None:
        return await self.slots.on_slot(chain_id, now)

    async def equivocate(self, chain_id: int, owner: str, now: int) -> Block:
        return await self.slots.equivocate(chain_id, owner, now)

    def budget(self, chain_id: int, now: int) -> int:
        return self.slots.budget(chain_id, now)

    def is_idle(self, chain_id: int, now: int) -> bool:
        return self.slots.is_idle(chain_id, now)

    # --- lifecycle and energy ------------------------------------------------------------------

    async def schedule_merge(
        self, chain_id: int, *, at_height: int | None = None, at_total_difficulty: int | None = None
    ) -> ConsensusConfig:
        return await self.lifecycle.schedule_merge(
            chain_id, at_height=at_height, at_total_difficulty=at_total_difficulty
        )

    async def switch_mode(
        self, chain_id: int, mode: Mode, admin_owner: str, now: int, *, base: ConsensusConfig | None = None,
        initial_bits: int | None = None,
    ) -> ConsensusConfig:
        return await self.lifecycle.switch_mode(chain_id, mode, admin_owner, now, base=base, initial_bits=initial_bits)

    async def reset(
        self, chain_id: int, params: ChainParams, *, initial_bits: int, consensus: ConsensusConfig | None,
        keep_rules: bool = False,
    ) -> None:
        await self.lifecycle.reset(
            chain_id, params, initial_bits=initial_bits, consensus=consensus, keep_rules=keep_rules
        )

    async def energy(self, chain_id: int) -> EnergyReport:
        return await self.energy_meter.report(chain_id)
