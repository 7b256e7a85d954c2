"""Typed errors for everything the engine refuses.

Modelled on python-bitcoinlib's hierarchy (``ValidationError`` ->
``CheckProofOfWorkError``): callers catch the family they care about, and every
message says what was wrong with which value.

Every class names a stable ``code`` (snake_case, unique across the hierarchy, checked
when the class is defined): a front end looks its words up by code, never by parsing
the message.  Errors whose values a front end needs to word its own answer keep them as
attributes (``FaucetEmptyError.left``...).  ``str(error)`` is a plain, complete English
sentence for the command line and the logs; it names no command of any front end (the
Discord cogs add their own hints, cogs/refusals.py).
"""

from __future__ import annotations

from typing import ClassVar

# code -> class: filled as the classes below are defined, so a second class with a taken code fails at import.
CODES: dict[str, type[ChainError]] = {}


class ChainError(Exception):
    """Base class of every error the engine raises on purpose."""

    code: ClassVar[str] = "chain_error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Explicit, not derived from the class name: renaming a class must not change what front ends key on.
        code = cls.__dict__.get("code")
        if not isinstance(code, str) or not code:
            raise TypeError(f"{cls.__name__} must set its own code (a stable snake_case string)")
        taken = CODES.get(code)
        if taken is not None:
            raise TypeError(f"{cls.__name__}.code {code!r} is already {taken.__name__}'s")
        CODES[code] = cls


CODES[ChainError.code] = ChainError


class ValidationError(ChainError):
    """An input broke a consensus rule; nothing was changed."""

    code = "validation"


class EncodingError(ValidationError):
    """Bytes that do not decode into the expected structure."""

    code = "encoding"


# --- compact bits -----------------------------------------------------------


class CompactBitsError(ValidationError):
    """A compact ``bits`` value that does not describe a usable target."""

    code = "compact_bits"


class NegativeTargetError(CompactBitsError):
    code = "negative_target"


class TargetOverflowError(CompactBitsError):
    code = "target_overflow"


class ZeroTargetError(CompactBitsError):
    code = "zero_target"


class TargetAbovePowLimitError(CompactBitsError):
    code = "target_above_pow_limit"


# --- headers ----------------------------------------------------------------


class HeaderError(ValidationError):
    """A block header failed a contextual or context-free check."""

    code = "header"


class BadParentError(HeaderError):
    code = "bad_parent"


class BadDifficultyBitsError(HeaderError):
    code = "bad_difficulty_bits"


class CheckProofOfWorkError(HeaderError):
    code = "check_proof_of_work"


class TimeTooOldError(HeaderError):
    code = "time_too_old"


class TimeTooNewError(HeaderError):
    code = "time_too_new"


class MerkleRootMismatchError(HeaderError):
    code = "merkle_root_mismatch"


class StaleBlockError(BadParentError):
    """A block built on a tip that has since moved on."""

    code = "stale_block"


# --- transactions -----------------------------------------------------------


class TransactionError(ValidationError):
    """A transfer that cannot be applied to the current state."""

    code = "transaction"


class BadSignatureError(TransactionError):
    code = "bad_signature"


class NonceError(TransactionError):
    code = "nonce"


class NonceReplayError(NonceError):
    code = "nonce_replay"


class NonceGapError(NonceError):
    code = "nonce_gap"


class InsufficientBalanceError(TransactionError):
    code = "insufficient_balance"


class InvalidAmountError(TransactionError):
    code = "invalid_amount"


class InvalidFeeError(TransactionError):
    code = "invalid_fee"


class UnknownAccountError(TransactionError):
    code = "unknown_account"


class SelfTransferError(TransactionError):
    code = "self_transfer"


# --- blocks -----------------------------------------------------------------


class BlockError(ValidationError):
    """A block body that breaks a rule (coinbase, size, duplicates)."""

    code = "block"


class BadCoinbaseError(BlockError):
    code = "bad_coinbase"


class DuplicateTransactionError(BlockError):
    code = "duplicate_transaction"


class BlockTooLargeError(BlockError):
    code = "block_too_large"


# --- mempool ----------------------------------------------------------------


class MempoolError(ChainError):
    """The mempool refused a transaction that may be valid on its own."""

    code = "mempool"


class MempoolFullError(MempoolError):
    code = "mempool_full"


class ReplacementRejectedError(MempoolError):
    code = "replacement_rejected"


class AlreadyKnownError(MempoolError):
    code = "already_known"


class TooManyPendingError(MempoolError):
    code = "too_many_pending"


# --- storage and lookup -----------------------------------------------------


class ChainNotFoundError(ChainError):
    code = "chain_not_found"


class ChainExistsError(ChainError):
    code = "chain_exists"


class BlockNotFoundError(ChainError):
    code = "block_not_found"


class TransactionNotFoundError(ChainError):
    code = "transaction_not_found"


class ChainOfflineError(ChainError):
    """A stored chain that could not be loaded at startup: taken offline until an admin resets it."""

    code = "chain_offline"

    def __init__(self, chain_id: int, reason: str) -> None:
        super().__init__(f"chain {chain_id} could not be loaded ({reason}); it is offline until it is reset")
        self.chain_id = chain_id
        self.reason = reason


class HistoryUnavailableError(ChainError):
    """A header or hash older than the recent window a ``ChainState`` keeps in memory (ask the store)."""

    code = "history_unavailable"


class SnapshotError(EncodingError):
    """A stored beacon-state snapshot that cannot be decoded (corrupt, truncated or an unknown version)."""

    code = "snapshot"


class SnapshotUnavailableError(ChainError):
    """A consistent read needs a second connection, which an in-memory database cannot give."""

    code = "snapshot_unavailable"


class ExportTooLargeError(ChainError):
    """A chain export would be bigger than the caller allowed; nothing of it was built."""

    code = "export_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the export is {size:,} bytes, over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit


class ParamsError(ChainError):
    """Chain parameters that do not make a workable chain."""

    code = "params"


class WalletError(ChainError):
    """A wallet key that cannot be created, opened or used."""

    code = "wallet"


class MasterKeyMismatchError(WalletError):
    """The master key is not the one this database's secrets are sealed under."""

    code = "master_key_mismatch"


class HashingCoreError(ChainError):
    """The hashing core broke its own contract (a found outcome without its nonces): no block."""

    code = "hashing_core"


class VerificationError(ChainError):
    """Replaying a chain from genesis found a problem at a given height."""

    code = "verification"

    def __init__(self, height: int, cause: Exception) -> None:
        super().__init__(f"block {height}: {cause}")
        self.height = height
        self.cause = cause


# --- proof of stake ---------------------------------------------------------


class StakingError(ValidationError):
    """A proof-of-stake message, piece of evidence or registry change that breaks a rule."""

    code = "staking"


class AttestationError(StakingError):
    """An attestation whose fields cannot describe a real vote."""

    code = "attestation"


class WrongChainError(StakingError):
    """A signed message made for another server's chain."""

    code = "wrong_chain"


class SlashingEvidenceError(StakingError):
    """Evidence that does not prove a slashable offence; nobody is slashed."""

    code = "slashing_evidence"


class ValidatorMismatchError(SlashingEvidenceError):
    code = "validator_mismatch"


class SlotMismatchError(SlashingEvidenceError):
    code = "slot_mismatch"


class IdenticalMessagesError(SlashingEvidenceError):
    code = "identical_messages"


class NotSlashableError(SlashingEvidenceError):
    code = "not_slashable"


class ProposerSelectionError(StakingError):
    """Inputs from which no proposer can be drawn (no validators, bad seed, zero stake)."""

    code = "proposer_selection"


class FinalityError(StakingError):
    """Justification inputs that do not describe a possible epoch."""

    code = "finality"


class DepositError(StakingError):
    code = "deposit"


class UnknownValidatorError(StakingError):
    code = "unknown_validator"


class ValidatorStatusError(StakingError):
    """An operation the validator's current status does not allow (not active, already exiting...)."""

    code = "validator_status"


class SlashingProtectionError(ChainError):
    """The signer refused: signing this message could get the validator slashed."""

    code = "slashing_protection"


class DoubleVoteRefusedError(SlashingProtectionError):
    code = "double_vote_refused"


class SurroundVoteRefusedError(SlashingProtectionError):
    code = "surround_vote_refused"


class SourceEpochTooLowError(SlashingProtectionError):
    code = "source_epoch_too_low"


class TargetEpochTooLowError(SlashingProtectionError):
    code = "target_epoch_too_low"


class DoubleProposalRefusedError(SlashingProtectionError):
    code = "double_proposal_refused"


class BlockSlotTooLowError(SlashingProtectionError):
    code = "block_slot_too_low"


class InterchangeError(EncodingError):
    """An EIP-3076 slashing-protection file that cannot be imported."""

    code = "interchange"


class InterchangeGenesisMismatchError(InterchangeError):
    code = "interchange_genesis_mismatch"


# --- rewards and penalties --------------------------------------------------


class RewardsError(StakingError):
    """Epoch participation or balances from which no rewards can be computed; nothing was paid."""

    code = "rewards"


class IssuanceRateError(ParamsError):
    """A yearly issuance rate outside the range a server may choose."""

    code = "issuance_rate"


# --- signer / store (PoS adapters) -------------------------------------------


class ValidatorKeyError(WalletError):
    """A validator key that cannot be opened, or cannot sign this message (it names another validator)."""

    code = "validator_key"


class EnergyError(ChainError):
    """Counts or costs from which no energy figure can be computed (negative, or no baseline)."""

    code = "energy"


# --- consensus modes, proof-of-stake blocks and operations -------------------


class ConsensusConfigError(ParamsError):
    """A consensus configuration (mode, slots, Merge schedule...) that cannot make a working chain."""

    code = "consensus_config"


class UnknownModeError(ConsensusConfigError):
    """A consensus mode other than pow, pos or hybrid (in a stored or exported config, or an input)."""

    code = "unknown_mode"


class MergeError(BlockError):
    """A proof-of-work block after the Merge, or a proof-of-stake block before it."""

    code = "merge"


class SlotError(BlockError):
    """A proof-of-stake block whose slot or time does not fit the slot clock."""

    code = "slot"


class BadProposerError(BlockError):
    """A proof-of-stake block proposed by a validator other than the slot's drawn proposer."""

    code = "bad_proposer"


class OperationsError(BlockError):
    """Block operations this block kind or mode may not carry (attestations in pure PoW...)."""

    code = "operations"


class WithdrawalMismatchError(BlockError):
    """A block whose withdrawals are not exactly ``get_expected_withdrawals`` (Capella)."""

    code = "withdrawal_mismatch"


class ExitError(StakingError):
    """A voluntary exit that is badly signed or too early."""

    code = "exit"


class DuplicateAttestationError(AttestationError):
    """A validator's vote for this target is already counted."""

    code = "duplicate_attestation"


class ForkChoiceError(StakingError):
    """A candidate block or vote the fork choice cannot accept."""

    code = "fork_choice"


class FinalizedConflictError(ForkChoiceError):
    """A candidate that would revert a finalized block."""

    code = "finalized_conflict"


# --- beacon node (staking as members use it) ---------------------------------


class DepositPendingError(DepositError):
    """A deposit and a transfer would share a wallet nonce: one waits for the other's block."""

    code = "deposit_pending"


class NotStakingChainError(StakingError):
    """The chain has no proof-of-stake side (created before it existed, or not in that mode)."""

    code = "not_staking_chain"


class StakingUnavailableError(NotStakingChainError):
    """This program runs no beacon node, so no chain of it can stake."""

    code = "staking_unavailable"


class ChainBeforeStakingError(NotStakingChainError):
    """The chain was created before proof of stake existed: it has no beacon state (a reset gives it one)."""

    code = "chain_before_staking"

    def __init__(self, chain_id: int) -> None:
        super().__init__(f"chain {chain_id} was created before proof of stake existed, so it cannot stake")
        self.chain_id = chain_id


class NoValidatorError(StakingError):
    """The member has no validator on this chain; ``action`` is what they asked for that needs one."""

    code = "no_validator"

    def __init__(self, chain_id: int, owner: str, action: str) -> None:
        super().__init__("you have no validator on this chain")
        self.chain_id = chain_id
        self.owner = owner
        self.action = action


class ChaosModeOffError(StakingError):
    """A deliberately slashable action while the server's chaos mode is off; ``action`` names it
    (``"double_vote"`` or ``"equivocate"``)."""

    code = "chaos_mode_off"

    def __init__(self, chain_id: int, action: str) -> None:
        super().__init__(
            f"{action} only works in chaos mode, which is off on chain {chain_id}: the signer refuses to sign "
            "anything slashable (EIP-3076 slashing protection)"
        )
        self.chain_id = chain_id
        self.action = action


class NotProposerError(StakingError):
    """Only this slot's drawn proposer can do this."""

    code = "not_proposer"


# --- faucet --------------------------------------------------------------------


class FaucetError(ChainError):
    """A faucet claim that cannot be paid; nothing was changed (no transfer, no cooldown)."""

    code = "faucet"


class NoFaucetError(FaucetError):
    """The chain was created without a faucet account at genesis."""

    code = "no_faucet"

    def __init__(self, chain_id: int, message: str) -> None:
        super().__init__(message)
        self.chain_id = chain_id


class FaucetEmptyError(FaucetError):
    """The faucet's points left (after its pending payouts) do not cover a claim."""

    code = "faucet_empty"

    def __init__(self, left: int, amount: int) -> None:
        super().__init__(f"the faucet has {left} points left, fewer than the {amount} a claim gives")
        self.left = left
        self.amount = amount


class FaucetCooldownError(FaucetError):
    """The member claimed less than the cooldown ago; ``available_at`` is when they may claim again
    (node clock, whole seconds)."""

    code = "faucet_cooldown"

    def __init__(self, message: str, available_at: int) -> None:
        super().__init__(message)
        self.available_at = available_at


# --- games: attack mathematics (issue 11) ------------------------------------


class GameError(ChainError):
    """Inputs from which a game's figure or simulation cannot be computed; nothing was played."""

    code = "game"


class InvalidHashShareError(GameError):
    """A share of the hash power (an attacker's q, a selfish pool's α) outside the range its figure is
    defined for, or not an exact fraction."""

    code = "invalid_hash_share"


class InvalidTieBreakError(GameError):
    """A tie-break share γ outside [0, 1], or not an exact fraction."""

    code = "invalid_tie_break"


class InvalidConfirmationsError(GameError):
    """A number of confirmations z that is negative, not an integer, or too large to compute."""

    code = "invalid_confirmations"


class InvalidGiveUpError(GameError):
    """A give-up depth that is not an integer deeper than the confirmations the merchant waits for."""

    code = "invalid_give_up"


class InvalidSimulationLengthError(GameError):
    """A simulation length (rounds, blocks) that is not a positive integer within the cap."""

    code = "invalid_simulation_length"


class InvalidRiskError(GameError):
    """A risk bound (for the confirmations needed) outside (0, 1], or not an exact fraction."""

    code = "invalid_risk"


class NoSafeConfirmationsError(GameError):
    """No number of confirmations (up to the cap) brings the attacker's chance below the bound asked for."""

    code = "no_safe_confirmations"


class InvalidPlacesError(GameError):
    """A number of decimal places to round a figure to that is not a whole number in the supported range."""

    code = "invalid_places"


# --- block tree: fork choice by work and reorg paths (issue 11) ----------------


class BlockTreeError(ChainError):
    """The block tree refused a block or a question about one; the tree is unchanged."""

    code = "block_tree"


class BlockHashError(BlockTreeError):
    """A block or parent hash that is not 32 bytes."""

    code = "block_tree_bad_hash"


class UnknownParentError(BlockTreeError):
    """A block whose parent is not in the tree (the tree takes only blocks that extend a known block)."""

    code = "unknown_parent"

    def __init__(self, message: str, parent_hash: bytes) -> None:
        super().__init__(message)
        self.parent_hash = parent_hash


class DuplicateBlockError(BlockTreeError):
    """A block already in the tree."""

    code = "duplicate_block"


class BlockHeightMismatchError(BlockTreeError):
    """A block whose height is not its parent's height plus one."""

    code = "block_height_mismatch"


class BlockWorkError(BlockTreeError):
    """A block's own work that is not a positive integer (Core's GetBlockProof is at least 1)."""

    code = "block_work"


class BlockNotInTreeError(BlockTreeError):
    """A question about a block the tree does not hold."""

    code = "block_not_in_tree"


class AncestorHeightError(BlockTreeError):
    """An ancestor asked for at a height below 0 or above the block's own."""

    code = "ancestor_height"


class ReorgPastFinalizedBlockError(BlockTreeError):
    """A reorg that would disconnect the finalized block (or end on a branch that does not contain it)."""

    code = "reorg_past_finalized_block"

    def __init__(self, message: str, finalized_hash: bytes, finalized_height: int, depth: int) -> None:
        super().__init__(message)
        self.finalized_hash = finalized_hash
        self.finalized_height = finalized_height
        self.depth = depth


# --- fork choice over a block tree (chain/pos/lmd_ghost.py) -------------------


class UnknownForkChoiceBlockError(ForkChoiceError):
    """A root the fork choice store does not hold: a block, a vote's head or target, or a checkpoint."""

    code = "fork_choice_unknown_block"

    def __init__(self, message: str, root: bytes) -> None:
        super().__init__(message)
        self.root = root


class ForkChoiceUnknownParentError(ForkChoiceError):
    """A block whose parent the fork choice store does not hold (phase0 delays it until the parent arrives)."""

    code = "fork_choice_unknown_parent"


class BlockSlotOrderError(ForkChoiceError):
    """A block whose slot is not after its parent's."""

    code = "fork_choice_slot_order"


class ForkChoiceTimingError(ForkChoiceError):
    """A block or vote from a slot the store has not reached, a vote too old to count, or a clock going back."""

    code = "fork_choice_timing"


class InconsistentVoteError(ForkChoiceError):
    """A vote whose head, target and slot do not agree (phase0 ``validate_on_attestation``)."""

    code = "fork_choice_inconsistent_vote"


class JustifiedBalancesError(ForkChoiceError):
    """Missing or malformed effective balances for the justified checkpoint's state."""

    code = "fork_choice_justified_balances"


class NotFinalizedDescendantError(FinalizedConflictError):
    """A block, checkpoint or finality update that does not descend from the finalized checkpoint."""

    code = "not_finalized_descendant"


class HeadOffFinalizedCheckpointError(FinalizedConflictError):
    """A head change that would leave the finalized checkpoint's subtree: refused, whatever its weight."""

    code = "head_off_finalized_checkpoint"

    def __init__(self, message: str, head: bytes, finalized_epoch: int, finalized_root: bytes) -> None:
        super().__init__(message)
        self.head = head
        self.finalized_epoch = finalized_epoch
        self.finalized_root = finalized_root


# --- block undo and disconnect (issue 11) -------------------------------------


class UndoError(ChainError):
    """A block's undo record cannot take it back off the ledger it was given; nothing was changed."""

    code = "undo"


class UndoEncodingError(EncodingError):
    """Bytes that are not an undo record this code wrote: wrong magic or version, a checksum mismatch,
    a truncated or overlong record, or a field out of its canonical form (an encoding error, like a
    corrupt beacon snapshot's ``SnapshotError``)."""

    code = "undo_encoding"


class UndoMismatchError(UndoError):
    """The ledger does not hold the values the block left behind (an account, or the points minted): the
    record belongs to another block, or a later block has not been disconnected first."""

    code = "undo_mismatch"


class DisconnectOrderError(UndoError):
    """Blocks disconnected out of order: the record is not the current tip's, or a sequence of records does
    not walk back one parent at a time."""

    code = "disconnect_order"


# --- reorg events (chain/consensus/reorg_events.py) ---------------------------


class ReorgEventsMismatchError(ChainError):
    """The facts given to announce a reorg do not belong together: the disconnected blocks are not the
    reorg's, or a returned or reversed payment is in none of them; no event was built."""

    code = "reorg_events_mismatch"


# --- guided lessons (issue 11, item 7) -----------------------------------------


class LessonError(ChainError):
    """A lesson cannot be checked or rewarded as asked; nothing was changed."""

    code = "lesson"


class UnknownLessonError(LessonError):
    """No lesson has this id."""

    code = "unknown_lesson"

    def __init__(self, lesson_id: str, known: tuple[str, ...]) -> None:
        super().__init__(f"there is no lesson {lesson_id!r}; the lessons are {', '.join(known)}")
        self.lesson_id = lesson_id
        self.known = known


class LessonUnavailableError(LessonError):
    """The lesson exists but its check needs engine parts that are not running yet."""

    code = "lesson_unavailable"

    def __init__(self, lesson_id: str, reason: str) -> None:
        super().__init__(f"lesson {lesson_id!r} is not available yet: {reason}")
        self.lesson_id = lesson_id
        self.reason = reason


class LessonAlreadyCompletedError(LessonError):
    """The member completed this lesson on this chain before: its reward is paid once."""

    code = "lesson_already_completed"

    def __init__(self, lesson_id: str, completed_at: int) -> None:
        super().__init__(f"lesson {lesson_id!r} was already completed (at {completed_at}); its reward is paid once")
        self.lesson_id = lesson_id
        self.completed_at = completed_at


# --- the stored block tree and the reorg transaction (issue 11, storage) -------


class StoredTreeError(ChainError):
    """The store refused a side block or a reorg; nothing was written."""

    code = "stored_tree"


class ReorgTipMismatchError(StoredTreeError):
    """A reorg whose blocks to disconnect are not the stored main chain from its tip downward (another
    writer moved the tip, or the caller's tree disagrees with the store)."""

    code = "reorg_tip_mismatch"


class UndoRecordMissingError(StoredTreeError):
    """A reorg would disconnect a block the store holds no undo record for (the genesis block, or a block
    stored before undo records existed): a reorg cannot go below it."""

    code = "undo_record_missing"

    def __init__(self, message: str, height: int) -> None:
        super().__init__(message)
        self.height = height


class SideBlockUndoError(StoredTreeError):
    """A side block given with an undo record that is not its own (another block's hash, parent or height)."""

    code = "side_block_undo_mismatch"


# --- games running on a server's chain (issue 11, games) ----------------------------


class GameSessionError(ChainError):
    """A game could not be started, played or ended as asked; the chain is unchanged."""

    code = "game_session"


class GameAlreadyRunningError(GameSessionError):
    """A game is already running on this chain: one game at a time, so that each one's summary is its own."""

    code = "game_already_running"

    def __init__(self, chain_id: int, kind: str) -> None:
        super().__init__(f"a {kind} game is already running on chain {chain_id}; end it first")
        self.chain_id = chain_id
        self.kind = kind


class NoGameRunningError(GameSessionError):
    """A command for a running game, with none of that kind running on the chain."""

    code = "no_game_running"

    def __init__(self, chain_id: int, kind: str) -> None:
        super().__init__(f"no {kind} game is running on chain {chain_id}")
        self.chain_id = chain_id
        self.kind = kind


# --- the node's block tree: branches and reorgs (issue 11, node) ---------------------


class BranchError(ChainError):
    """A block off the main chain could not be checked or switched to; nothing was stored."""

    code = "branch"


class BranchStateUnavailableError(BranchError):
    """The state a side branch forks from cannot be rebuilt here: its beacon state is no longer kept in
    memory, or the main chain above the fork committed a Merge schedule (a reorg does not take one back)."""

    code = "branch_state_unavailable"


# --- orphaned blocks in verification and exports (issue 11, item 3) ------------------------------


class OrphanVerificationError(VerificationError):
    """An orphaned (side) block of the tree failed verification: named by hash, at its own height."""

    code = "orphan_verification"

    def __init__(self, height: int, block_hash: str, cause: Exception) -> None:
        # Not VerificationError's "block N: ..." message: height N names a main-chain block.
        ChainError.__init__(self, f"orphaned block {block_hash[:16]}… at height {height} (off the main chain): {cause}")
        self.height = height
        self.cause = cause
        self.block_hash = block_hash


class OrphanParentUnknownError(ChainError):
    """An orphaned block builds on a block that is neither on the main chain nor among the orphans."""

    code = "orphan_parent_unknown"


class OrphanHeightError(ChainError):
    """An orphaned block is listed at a height other than its parent's plus one."""

    code = "orphan_height_mismatch"


class OrphanOnMainChainError(ChainError):
    """A block listed as orphaned is on the main chain, or listed twice, or does not match its listing."""

    code = "orphan_listing"


class BranchTooDeepError(BranchError):
    """A branch that leaves the main chain further below its tip, or runs longer above the fork point,
    than the node checks under a chain's lock (``MAX_BRANCH_DEPTH_BLOCKS``)."""

    code = "branch_too_deep"

    def __init__(self, message: str, depth: int, limit: int) -> None:
        super().__init__(message)
        self.depth = depth
        self.limit = limit


# --- /mine on_block: mining on an older block, for /learn's reorg lessons (issue 11, item 7) ---


class MiningBaseError(ChainError):
    """A block a member asked to mine on cannot be mined on; nothing was started."""

    code = "mining_base"


class MiningBaseDuringGameError(MiningBaseError):
    """A running game decides where members mine (its route); a block chosen by hand would bypass it."""

    code = "mining_base_during_game"

    def __init__(self, chain_id: int, kind: str) -> None:
        super().__init__(f"a {kind} game is running on chain {chain_id}: it decides where its players mine")
        self.chain_id = chain_id
        self.kind = kind


# --- selfish mining game (issue 11, item 5) -----------------------------------------


class InvalidPoolStateError(GameError):
    """A selfish pool's state or step that Algorithm 1 (Eyal and Sirer) has no transition for."""

    code = "invalid_pool_state"


class SelfishGameDurationError(GameSessionError):
    """A selfish-mining game's length outside what a game may last (a positive number of seconds, capped)."""

    code = "selfish_game_duration"


class SelfishMiningUnavailableError(GameSessionError):
    """Selfish mining needs proof-of-work mining: the chain is on proof of stake (from genesis, or merged)."""

    code = "selfish_mining_unavailable"

    def __init__(self, chain_id: int) -> None:
        super().__init__(
            f"chain {chain_id} takes no more proof-of-work blocks (proof of stake), so no pool can mine on it"
        )
        self.chain_id = chain_id


# --- the double-spend game (issue 11, item 4) ----------------------------------------


class DoubleSpendError(GameSessionError):
    """The double-spend game refused a start, a publish or a status; nothing was changed."""

    code = "double_spend"


class DoubleSpendPlanError(DoubleSpendError):
    """A double-spend game asked for with settings it cannot be played with (the merchant is an attacker,
    a confirmation count or a lent share out of range, no points to pay); nothing was started."""

    code = "double_spend_plan"


class DoubleSpendBalanceError(DoubleSpendError):
    """The attacker's wallet cannot pay the merchant the amount asked for; nothing was started."""

    code = "double_spend_balance"

    def __init__(self, message: str, balance: int, amount: int) -> None:
        super().__init__(message)
        self.balance = balance
        self.amount = amount


class DoubleSpendOverError(DoubleSpendError):
    """The game was already published or ended (by another command, the automatic publish or the
    deadline at the same moment): this command found nothing left to do."""

    code = "double_spend_over"


class DoubleSpendNotAttackerError(DoubleSpendError):
    """Only the attacking side (or an admin) may publish the private branch."""

    code = "double_spend_not_attacker"


# --- the network-split game (issue 11, games item 6) --------------------------------


class NetworkSplitError(GameSessionError):
    """A network split could not be started, played or healed as asked; the chain is unchanged."""

    code = "network_split"


class SplitUnavailableError(NetworkSplitError):
    """A split asked for on a chain whose consensus this game does not play (yet): ``mode`` says which."""

    code = "split_unavailable"

    def __init__(self, message: str, mode: str) -> None:
        super().__init__(message)
        self.mode = mode


class SplitDurationError(NetworkSplitError):
    """A split's length outside the range the game allows."""

    code = "split_duration"


class SplitBranchMismatchError(NetworkSplitError):
    """A block given to a side of the split that does not build on that side's tip."""

    code = "split_branch_mismatch"


class SplitPaymentError(NetworkSplitError):
    """A payment on one side of the split that side's branch cannot carry (not enough points there)."""

    code = "split_payment"

    def __init__(self, message: str, side: str, balance: int, needed: int) -> None:
        super().__init__(message)
        self.side = side
        self.balance = balance
        self.needed = needed


# --- Chart data (chain/consensus/chart_data.py): the series `/chain chart` plots ---


class ChartDataError(ChainError):
    """The inputs of a chart's data series are unusable; nothing was computed."""

    code = "chart_data"


class ChartEmptyInputError(ChartDataError):
    """Too little to plot: no headers, fewer than two block times, no shares or no blocks won."""

    code = "chart_empty_input"


class ChartBinsError(ChartDataError):
    """Histogram bin edges that are not whole seconds starting at 0 and strictly increasing."""

    code = "chart_bins"


class ChartValueError(ChartDataError):
    """A value a series cannot hold: a negative share or win count, a height out of order, a spacing below 1 s."""

    code = "chart_value"


# --- Supply history (chain/consensus/supply_history.py): the supply chart's replay ---


class SupplyMismatchError(ChartDataError):
    """At some height minted − burned is not staked + circulating: the replayed chain lost or made points."""

    code = "supply_mismatch"


class SupplyHistoryPendingError(ChartDataError):
    """The replay behind the supply chart is still running; it goes on, and a later request gets the chart."""

    code = "supply_history_pending"

    def __init__(self, message: str, *, replayed: int, height: int) -> None:
        super().__init__(message)
        self.replayed = replayed
        self.height = height
# --- The block tree chart (chain/consensus/tree_layout.py): lanes for the main chain and side branches ---


class TreeLayoutError(ChartDataError):
    """Blocks that cannot be laid out as a tree: a block given twice, a height that is not its parent's
    plus one, a main tip not among them, or no lane to draw side branches on."""

    code = "chart_tree_layout"


class TreeHasNoForksError(ChartEmptyInputError):
    """The block tree has no block off the main chain: there is no fork to draw yet."""

    code = "chart_no_forks"


# --- Copying a SQLite database into PostgreSQL (chain/adapters/storage/database_copy.py) ---


class DatabaseCopyError(ChainError):
    """A copy of a database into PostgreSQL was refused or does not match its source."""

    code = "database_copy"


class CopySourceError(DatabaseCopyError):
    """The source cannot be copied as it is: missing, not a playground database, at another schema
    version, or with tables the target does not have."""

    code = "copy_source_unusable"


class CopyTargetNotEmptyError(DatabaseCopyError):
    """The target database already holds rows: a copy never merges into live data."""

    code = "copy_target_not_empty"

    def __init__(self, message: str, *, tables: list[str]) -> None:
        super().__init__(message)
        self.tables = tables


class CopyMismatchError(DatabaseCopyError):
    """The copy does not hold what the source holds; ``differences`` names each difference.
    ``committed``: False when found before the commit (the copy was rolled back, the target is empty)."""

    code = "copy_mismatch"

    def __init__(
        self, differences: list[str], *, committed: bool, source: list[str] | None = None,
        target: list[str] | None = None,
    ) -> None:
        where = (
            "the copy committed but reads back different: do not use the target"
            if committed
            else "the copy was rolled back, the target is as empty as before"
        )
        super().__init__(f"{len(differences)} differences ({where}): " + "; ".join(differences))
        self.differences = differences
        self.committed = committed
        # Each side's summary as printed lines (``DatabaseSummary.lines``), when both were read.
        self.source = source or []
        self.target = target or []


# --- Ownership (issue 13, sharded processes): a node serves only the chains it owns ---


class ChainNotOwnedError(ChainError):
    """The chain belongs to another process of the bot: this node neither loads, creates nor resets it."""

    code = "chain_not_owned"

    def __init__(self, chain_id: int) -> None:
        super().__init__(
            f"chain {chain_id} is served by another process of this bot, not this one: nothing was changed. "
            "Try again in a moment (its own process answers for it)."
        )
        self.chain_id = chain_id
