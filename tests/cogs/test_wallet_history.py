"""/wallet history's staking lines, from the typed events stake_history stores."""

from __future__ import annotations

from chain.events import STAKE_DEPOSITED, StakeDeposited, StakeWithdrawn, ValidatorSlashed, decode_event
from chain.playground import StoredStakeEntry
from cogs.wallet import describe_stake_entry

KEY = bytes(range(32))


def line(event) -> str:
    return describe_stake_entry(StoredStakeEntry(height=5, seq=0, event=event))


def test_each_staking_event_reads_as_one_line():
    deposit = StakeDeposited(validator_index=1, pubkey=KEY, wallet=KEY, amount=32, activation_epoch=2)
    assert line(deposit) == "−32 pts staked: new validator #1"
    top_up = StakeDeposited(validator_index=1, pubkey=KEY, wallet=KEY, amount=3, top_up=True, activation_epoch=2)
    assert line(top_up) == "−3 pts staked: added to validator #1"
    assert line(StakeWithdrawn(validator_index=1, address=KEY, points=31, full=True)) == (
        "+31 pts stake returned by validator #1"
    )
    assert line(StakeWithdrawn(validator_index=1, address=KEY, points=2)) == (
        "+2 pts paid back from above validator #1's stake cap"
    )
    slashed = ValidatorSlashed(validator_index=1, pubkey=KEY, wallet=KEY, offence="double vote",
                               penalty_units=10**9, proposer_index=0, withdrawable_epoch=9)
    assert line(slashed) == "⚔️ validator #1 slashed (double vote): −1 pts of its stake"


def test_a_row_this_version_cannot_read_is_still_a_line():
    assert line(decode_event(STAKE_DEPOSITED, "{not json")) == "stake deposited (not readable by this version)"
