"""Conservation with proof of stake: after every block, ledger balances plus validator balances
(in nanopoints) equal everything minted (allocations, genesis stake, subsidies, epoch rewards) minus
everything burned (penalties, slashings, withdrawal dust), across random staking, paying, voting,
exits, withdrawals and slashings; and a verifier replaying the chain reaches the same state."""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.consensus.duties import get_slot_proposer
from chain.consensus.genesis import make_genesis_block
from chain.consensus.verify import verify_chain
from chain.errors import ProposerSelectionError
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    sign_attestation,
)
from chain.pos.operations import Operations, make_deposit, make_voluntary_exit
from tests.chainkit import CHAIN_ID, GENESIS_TIME, key
from tests.poskit import Harness, new_consensus_chain, pos_config, validator_keys

WALLETS = [key(f"wallet-{i}") for i in range(4)]
EXTRA_VALIDATORS = [key(f"extra-{i}") for i in range(3)]

actions = st.lists(
    st.tuples(
        st.sampled_from(["pay", "deposit", "exit", "slash", "vote", "skip"]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(1, 60),
    ),
    min_size=5,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_supply_is_conserved_at_every_block(steps):
    config = pos_config(unbonding_epochs=1, slashed_unbonding_epochs=2)
    state = new_consensus_chain(config)
    h = Harness(state, [*validator_keys(), *EXTRA_VALIDATORS])
    nonces = [0] * 4
    slot = 0
    pending_votes = []
    for action, a, b, amount in steps:
        slot += 1 if action != "skip" else 1 + amount % 10
        ops = {"attestations": tuple(pending_votes)}
        transfers = []
        pending_votes = []
        if action == "pay" and a != b and state.ledger[WALLETS[a].public_key].balance >= amount:
            transfers.append(make_transfer(WALLETS[a], WALLETS[b].public_key, amount, amount % 3, nonces[a], CHAIN_ID))
            nonces[a] += 1
        elif action == "deposit":
            validator = EXTRA_VALIDATORS[b % 3]
            deposit = make_deposit(WALLETS[a], validator, 32 + amount % 5, nonces[a], CHAIN_ID)
            if state.ledger[WALLETS[a].public_key].balance >= deposit.amount:
                ops["deposits"] = (deposit,)
                nonces[a] += 1
        elif action == "exit":
            ops["voluntary_exits"] = (make_voluntary_exit(h.key_of(a), a, 0, CHAIN_ID),)
        elif action == "slash":

            key = h.key_of(a)

            def vote(head, key=key):
                data = AttestationData(CHAIN_ID, 0, head, Checkpoint(0, bytes(32)), Checkpoint(0, bytes(32)))
                return sign_attestation(key, data)

            ops["attester_slashings"] = (AttesterSlashing(vote(b"\x01" * 32), vote(b"\x02" * 32)),)
        try:
            # A slashed validator drawn to propose may not (phase0): its slot stays empty.
            while state.beacon.registry.validators[get_slot_proposer(state, slot)].slashed:
                slot += 1
            h.propose(slot, transfers=transfers, pool=Operations(**ops))
        except ProposerSelectionError:  # everyone exited: nobody is left to propose
            break
        if action == "vote":
            pending_votes = h.attest(slot)
        assert state.total_supply_units() == state.issued_supply_units()
        assert all(balance >= 0 for balance in state.beacon.registry.balances)
    for e in h.events:
        if e.kind in (
            "validator_slashed",
            "stake_withdrawn",
            "stake_deposited",
            "validator_exited",
            "checkpoint_finalized",
        ):
            event(e.kind)
    genesis = make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0, config)
    replayed, _ = verify_chain(REGTEST, CHAIN_ID, [genesis, *h.blocks], now=h.slot_time(slot), consensus=config)
    assert replayed.beacon == state.beacon
    assert dict(replayed.ledger.items()) == dict(state.ledger.items())
