"""Issue 10: the engine says what was wrong; cogs/refusals.py adds the Discord words a member acts on.

The expected texts are what members read before the hints moved out of chain/ (copied from the
engine's old messages): every refusal reads exactly as it did.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from discord import app_commands

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import (
    ChainBeforeStakingError,
    ChainError,
    ChainOfflineError,
    ChaosModeOffError,
    FaucetEmptyError,
    InsufficientBalanceError,
    LessonAlreadyCompletedError,
    LessonUnavailableError,
    MiningBaseDuringGameError,
    NoFaucetError,
    NotStakingChainError,
    NoValidatorError,
    StakingUnavailableError,
)
from chain.mode import Mode
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig
from cogs.errors import describe_error
from cogs.refusals import WORDS, refusal

MASTER = bytes(range(32))
CHAIN = 31

NO_VALIDATOR = "you have no validator on this chain; `/stake deposit` makes one"
CHAOS = (
    "{} only works in chaos mode, which is off on this server: your signer refuses to sign anything slashable "
    "(EIP-3076 slashing protection). To demonstrate slashing, an admin can turn chaos mode on with "
    "`/playground chaos`."
)
BEFORE_STAKING = (
    "This server's chain was created before proof of stake existed, so it cannot stake. "
    "An admin can start a new chain with `/playground reset`."
)
OFFLINE = (
    "This server's chain could not be loaded ({}). An admin can start over with `/playground reset` (the old "
    "chain's blocks and balances are lost); other servers are not affected."
)
NO_FAUCET = (
    "this server's chain was created before the faucet existed, so it holds no points to give. An admin's "
    "`/playground reset` starts a new chain with a faucet (the old chain's blocks and balances are lost)."
)
FAUCET_EMPTY = (
    "the faucet has 3 points left, fewer than the 32 a claim gives. Earn points by mining or staking, or ask a "
    "member to `/wallet pay` you; an admin's `/playground reset` refills it with a new chain."
)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (NoValidatorError(CHAIN, "42", "withdraw"), NO_VALIDATOR),
        (NoValidatorError(CHAIN, "42", "auto_attest"), NO_VALIDATOR + ", then turn auto-attest on"),
        (ChaosModeOffError(CHAIN, "double_vote"), CHAOS.format("`double_vote`")),
        (ChaosModeOffError(CHAIN, "equivocate"), CHAOS.format("`/stake equivocate`")),
        (ChainBeforeStakingError(CHAIN), BEFORE_STAKING),
        (ChainOfflineError(CHAIN, "EncodingError: bad bytes"), OFFLINE.format("EncodingError: bad bytes")),
        (NoFaucetError(CHAIN, "this server's chain was created before the faucet existed, so it holds no points "
                       "to give"), NO_FAUCET),
        (FaucetEmptyError(3, 32), FAUCET_EMPTY),
        # No entry: the engine's sentence, as before (a family's words never leak to a sibling).
        (StakingUnavailableError("Proof of stake is not available on this bot yet."),
         "Proof of stake is not available on this bot yet."),
        (NotStakingChainError("proposers are drawn once the chain has merged; it is still mined"),
         "proposers are drawn once the chain has merged; it is still mined"),
        (InsufficientBalanceError("you have 3 points"), "you have 3 points"),
    ],
)
def test_each_refusal_reaches_the_member_in_its_words(error, shown):
    assert describe_error(error) == shown
    # As a command body's error reaches cog_app_command_error: wrapped by discord.py.
    wrapped = app_commands.CommandInvokeError(SimpleNamespace(name="stake"), error)
    assert describe_error(wrapped) == shown


def test_every_worded_code_is_an_engine_code_and_the_words_name_a_command():
    from chain.errors import CODES

    assert set(WORDS) <= set(CODES)
    samples = {
        "no_validator": NoValidatorError(CHAIN, "42", "attest"), "chaos_mode_off": ChaosModeOffError(CHAIN, "x"),
        "chain_before_staking": ChainBeforeStakingError(CHAIN), "chain_offline": ChainOfflineError(CHAIN, "r"),
        "no_faucet": NoFaucetError(CHAIN, "no faucet"), "faucet_empty": FaucetEmptyError(0, 1),
        "lesson_already_completed": LessonAlreadyCompletedError("mine", 1_800_000_000),
        "lesson_unavailable": LessonUnavailableError("reorg", "not wired"),
        "mining_base_during_game": MiningBaseDuringGameError(CHAIN, "network_split"),
    }
    assert set(samples) == set(WORDS)
    for code, error in samples.items():
        assert "`/" in refusal(error), code  # the hint the engine no longer gives


class Defaults:
    default_params = REGTEST
    default_consensus = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4,
                                        checkpoint_interval_blocks=4)

    async def hash_rate(self) -> int:
        return 1


@pytest.fixture
async def engine(tmp_path):
    store = await Store.open(tmp_path / "refusals.sqlite3")
    node = Node(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom, master_key=MASTER)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom,
                                              master_key=MASTER))
    yield Playground(node, beacon, Defaults()), node
    await store.close()


async def shown(call) -> str:
    with pytest.raises(ChainError) as refused:  # any engine refusal: its words are the check
        await call
    text = describe_error(refused.value)
    assert text is not None, refused.value
    return text


async def test_the_engines_refusals_read_as_before_through_the_facade(engine):
    """From the real raise sites, not constructed errors: what the member of a staking chain reads."""
    facade, _ = engine
    await facade.switch_mode(CHAIN, Mode.POS, "alice")
    assert await shown(facade.withdraw(CHAIN, "carol")) == NO_VALIDATOR
    assert await shown(facade.attest(CHAIN, "carol")) == NO_VALIDATOR
    assert await shown(facade.protection(CHAIN, "carol")) == NO_VALIDATOR
    assert await shown(facade.set_auto_attest(CHAIN, "carol", True)) == NO_VALIDATOR + ", then turn auto-attest on"
    assert await shown(facade.attest(CHAIN, "alice", double_vote=True)) == CHAOS.format("`double_vote`")
    assert await shown(facade.equivocate(CHAIN, "alice")) == CHAOS.format("`/stake equivocate`")
    assert await shown(facade.faucet(CHAIN, "carol", 10, cooldown_s=60)) == NO_FAUCET  # created with no fund


async def test_a_chain_from_before_proof_of_stake_and_an_offline_chain_read_as_before(engine):
    facade, node = engine
    await node.create_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF)  # no consensus config: before PoS
    assert await shown(facade.deposit(CHAIN, "alice", 32)) == BEFORE_STAKING
    node._offline[CHAIN + 1] = "the file is damaged"  # what load() records for a chain it could not read
    assert await shown(facade.wallet(CHAIN + 1, "alice")) == OFFLINE.format("the file is damaged")
