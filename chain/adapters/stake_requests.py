"""A member's stake on a chain: deposits into their validator and its voluntary exit.

A deposit is signed by the member's wallet key and their validator key, an exit by the validator
key; each waits in the op pool for the next block.  Every check, the nonce and the admission happen
under the chain's lock (``Node.locked``, the one payments take), so a deposit and a payment (or two
deposits, or two exits) fired at once never both pass a check the other invalidates.
(The lifecycle rules themselves, activation and exit epochs, are ``chain.pos.staking``'s.)
"""

from __future__ import annotations

from chain.adapters.beacon_runtime import BeaconChains, is_pos, require_beacon
from chain.adapters.beacon_status import BeaconStatus, ValidatorView
from chain.consensus.consensus_block import compute_pre_block_beacon, process_block_operations
from chain.errors import DepositError, NoValidatorError, ValidatorStatusError
from chain.ledger.accounts import Account, LedgerView
from chain.pos.beacon import compute_slot_at_time
from chain.pos.operations import Deposit, Operations, VoluntaryExit
from chain.pos.staking import FAR_FUTURE_EPOCH, is_active_validator


class StakeRequests:
    """Deposits and exits of the validators the bot custodies."""

    def __init__(self, chains: BeaconChains, status: BeaconStatus) -> None:
        self.chains = chains
        self.status = status

    async def deposit(self, chain_id: int, owner: str, amount_points: int) -> ValidatorView | None:
        """Sign a deposit of ``amount_points`` into the owner's validator and queue it for the next block.

        Returns the validator as it is now (None when this deposit creates it: it
        appears with the block that includes the deposit).  Every check, the nonce
        and the admission happen under the chain's lock, the one payments take: a
        deposit and a payment (or two deposits) fired at once never share a nonce.

        A member's first deposit creates their validator key: made in memory, and stored in the
        same transaction as the pooled deposit, so a refused deposit leaves no key behind.
        """
        node, signer = self.chains.node, self.chains.signer
        wallet_key = await node.wallet(chain_id, owner)
        wallet = wallet_key.public_key
        async with node.locked(chain_id) as runtime:
            beacon = self.chains.beacon(chain_id)
            # Under the chain lock, the only place keys are made: no second deposit can make one meanwhile.
            validator_key = await signer.find_validator_key(chain_id, owner)
            new_key = None
            if validator_key is None:
                new_key = signer.new_validator_key(chain_id, owner)
                validator_key = new_key.pubkey
            if node.pending_deposits(chain_id, wallet):
                raise DepositError("you already have a deposit waiting for the next block; stake again once it is in")
            if runtime.mempool.pending_for(wallet):
                raise DepositError("you have a transfer waiting for the next block; stake once it is included")
            account = runtime.state.ledger.get(wallet)
            balance = 0 if account is None else account.balance
            if amount_points > balance:
                raise DepositError(f"you have {balance} points; you cannot stake {amount_points}")
            index = beacon.registry.index_of(validator_key)
            if index is None and amount_points < beacon.config.min_deposit_points:
                raise DepositError(
                    f"a new validator needs at least {beacon.config.min_deposit_points} points staked, "
                    f"not {amount_points}"
                )
            if index is not None and beacon.registry.validators[index].exit_epoch != FAR_FUTURE_EPOCH:
                raise ValidatorStatusError("your validator is exiting; wait until it is withdrawn to stake again")
            nonce = account.nonce if account is not None else 0
            deposit = await signer.sign_deposit(
                chain_id, owner, wallet_key, amount_points, nonce, new_key=new_key
            )
            await self._check_operation(chain_id, deposit)
            await node.add_operation(chain_id, deposit, validator_key=new_key)
            if new_key is not None:
                signer.adopt(chain_id, new_key)
            (await self.chains.runtime(chain_id)).owners[validator_key] = owner
            node.note_activity(chain_id)
        return None if index is None else await self.status.validator(chain_id, owner)

    async def withdraw(self, chain_id: int, owner: str) -> ValidatorView:
        """Sign a voluntary exit for the owner's validator and queue it for the next block (the checks
        and the queueing under the chain's lock, like deposits)."""
        node = self.chains.node
        async with node.locked(chain_id):
            beacon = self.chains.beacon(chain_id)
            index = await self.chains.index_of(chain_id, owner)
            if index is None:
                raise NoValidatorError(chain_id, owner, "withdraw")
            validator = beacon.registry.validators[index]
            if validator.exit_epoch != FAR_FUTURE_EPOCH:
                raise ValidatorStatusError(f"your validator is already exiting (exit epoch {validator.exit_epoch})")
            if not is_active_validator(validator, beacon.epoch):
                raise ValidatorStatusError(
                    f"your validator is not active yet (it activates in epoch {validator.activation_epoch})"
                )
            pending = self.chains.chain(chain_id).op_pool.pending(VoluntaryExit)
            if any(exit_.validator_index == index for exit_ in pending):
                raise ValidatorStatusError("your exit is already waiting for the next block")
            exit_ = await self.chains.signer.sign_exit(chain_id, owner, index, beacon.epoch)
            await self._check_operation(chain_id, exit_)
            await node.add_operation(chain_id, exit_)
            node.note_activity(chain_id)
        view = await self.status.validator(chain_id, owner)
        assert view is not None
        return view

    async def _check_operation(self, chain_id: int, operation: Deposit | VoluntaryExit) -> None:
        """Would the next block take it?  Raises the block rule's own typed error if not."""
        state = self.chains.chain(chain_id).state
        beacon = require_beacon(state)
        pos = is_pos(beacon)
        now = self.chains.node.now()
        slot = max(compute_slot_at_time(beacon, now) + 1, beacon.slot + 1) if pos else state.height + 1
        pre = compute_pre_block_beacon(state, slot, state.tip_hash, pos)
        operations = (
            Operations(deposits=(operation,)) if isinstance(operation, Deposit)
            else Operations(voluntary_exits=(operation,))
        )
        changes: dict[bytes, Account] = {}
        process_block_operations(
            pre, LedgerView(changes, state.ledger), changes, operations, state.chain_id, slot, None, state.params,
        )
