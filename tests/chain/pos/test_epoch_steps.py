"""The named steps of chain/pos/beacon.py's ``process_epoch`` and chain/consensus/consensus_block.py's block processing,
each on its own: the top-level functions must equal their steps run in order, and the event
step must tell what changed by comparing the states before and after."""

from dataclasses import replace

import pytest

from chain.consensus.consensus_block import for_ops
from chain.consensus.state import count_block_signatures
from chain.errors import AttestationError, ChainError
from chain.events import (
    EPOCH_REWARDS,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    VALIDATOR_ACTIVATED,
    VALIDATOR_EXITED,
)
from chain.pos.beacon import EJECTION_BALANCE_UNITS, get_epoch_length
from chain.pos.epoch_transition import (
    advance_epoch,
    compute_epoch_events,
    process_epoch,
    process_finality_and_rewards,
    process_participation_record_updates,
    process_pre_merge_epoch,
    process_registry_updates,
)
from chain.pos.operations import Operations
from chain.pos.rewards import UNITS_PER_POINT
from chain.pos.staking import FAR_FUTURE_EPOCH, Registry
from tests.poskit import Harness, new_consensus_chain, pos_config, staked_chain, validator_keys

KEYS = validator_keys()


def running_beacon(epochs: int = 2):
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.run_epochs(epochs)
    return h.state.beacon


def with_balance(beacon, index: int, units: int):
    validators = list(beacon.registry.validators)
    balances = list(beacon.registry.balances)
    validators[index] = replace(validators[index], effective_balance=units)
    balances[index] = units
    return replace(beacon, registry=Registry(tuple(validators), tuple(balances)))


def test_process_epoch_is_its_steps_in_order_then_the_events():
    pre = running_beacon()
    state, report = process_finality_and_rewards(pre, 60)
    state = advance_epoch(process_participation_record_updates(process_registry_updates(state)))
    expected = replace(state, events=pre.events + compute_epoch_events(pre, state, report))
    post = process_epoch(pre, 60)
    assert post == expected and post.events == expected.events
    assert [e.kind for e in post.events[len(pre.events):]][:1] == [EPOCH_REWARDS]


def test_registry_updates_eject_only_the_drained_active_validators():
    beacon = with_balance(running_beacon(), 1, EJECTION_BALANCE_UNITS)
    beacon = with_balance(beacon, 2, EJECTION_BALANCE_UNITS + UNITS_PER_POINT)
    after = process_registry_updates(beacon)
    exits = [v.exit_epoch for v in after.registry.validators]
    assert exits == [FAR_FUTURE_EPOCH, beacon.epoch + 1, FAR_FUTURE_EPOCH, FAR_FUTURE_EPOCH]
    assert after.epoch == beacon.epoch and after.registry.balances == beacon.registry.balances


def test_participation_record_updates_rotate_the_voters():
    beacon = replace(running_beacon(), current_attesters=frozenset({0, 2}), previous_attesters=frozenset({1}))
    after = process_participation_record_updates(beacon)
    assert after.current_attesters == frozenset() and after.previous_attesters == frozenset({0, 2})


def test_advance_epoch_opens_an_empty_proposer_record():
    beacon = running_beacon()
    after = advance_epoch(replace(beacon, epoch_proposers=(0,) * len(beacon.epoch_proposers)))
    assert after.epoch == beacon.epoch + 1
    assert after.epoch_proposers == (None,) * get_epoch_length(after, after.epoch)


def test_pre_merge_epoch_settles_balances_without_rewards():
    state, _ = staked_chain(blocks=3)
    beacon = state.beacon
    after = process_pre_merge_epoch(beacon)
    assert after.finality.current_epoch == beacon.epoch + 1
    assert after.minted_units == beacon.minted_units and after.registry.balances == beacon.registry.balances
    assert after.finality.finalized_checkpoint == beacon.finality.finalized_checkpoint


def test_epoch_events_compare_the_states():
    pre = running_beacon()
    post = advance_epoch(pre)
    assert compute_epoch_events(pre, post, None) == ()  # nothing changed, no report: nothing to say
    validators = list(post.registry.validators)
    validators[0] = replace(validators[0], activation_epoch=post.epoch)
    validators[1] = replace(validators[1], exit_epoch=post.epoch)
    changed = replace(post, registry=Registry(tuple(validators), post.registry.balances))
    kinds = [e.kind for e in compute_epoch_events(pre, changed, None)]
    assert kinds == [VALIDATOR_ACTIVATED, VALIDATOR_EXITED]
    _, report = process_finality_and_rewards(pre, 60)
    started = compute_epoch_events(pre, replace(post, in_leak=True), report)
    assert [(e.kind, e.payload.get("finality_delay")) for e in started][-1] == (
        INACTIVITY_LEAK_STARTED, report.finality_delay
    )
    ended = compute_epoch_events(replace(pre, in_leak=True), post, None)
    assert [e.kind for e in ended] == [INACTIVITY_LEAK_ENDED]


def test_for_ops_names_the_refused_operation():
    def step(total: int, item: int) -> int:
        if item < 0:
            raise AttestationError("negative")
        return total + item

    assert for_ops(0, "attestation", (1, 2, 3), step) == 6
    with pytest.raises(ChainError) as refused:
        for_ops(0, "attestation", (1, -1, 3), step)
    assert refused.value.__notes__ == ["attestation 1"]


def test_block_signatures_are_counted_per_operation():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    block, effects = h.propose(1)
    assert count_block_signatures(block) == effects.signatures_checked == 1  # the proposer's seal
    votes = h.attest(1)
    block, effects = h.propose(2, pool=Operations(attestations=tuple(votes)))
    assert len(block.operations.attestations) == len(votes) == 4
    assert count_block_signatures(block) == effects.signatures_checked == 1 + 4
