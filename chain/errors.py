"""Typed errors for everything the engine refuses.

Modelled on python-bitcoinlib's hierarchy (``ValidationError`` ->
``CheckProofOfWorkError``): callers catch the family they care about, and every
message says what was wrong with which value.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base class of every error the engine raises on purpose."""


class ValidationError(ChainError):
    """An input broke a consensus rule; nothing was changed."""


class EncodingError(ValidationError):
    """Bytes that do not decode into the expected structure."""


# --- compact bits -----------------------------------------------------------


class CompactBitsError(ValidationError):
    """A compact ``bits`` value that does not describe a usable target."""


class NegativeTargetError(CompactBitsError):
    pass


class TargetOverflowError(CompactBitsError):
    pass


class ZeroTargetError(CompactBitsError):
    pass


class TargetAbovePowLimitError(CompactBitsError):
    pass


# --- headers ----------------------------------------------------------------


class HeaderError(ValidationError):
    """A block header failed a contextual or context-free check."""


class BadParentError(HeaderError):
    pass


class BadDifficultyBitsError(HeaderError):
    pass


class CheckProofOfWorkError(HeaderError):
    pass


class TimeTooOldError(HeaderError):
    pass


class TimeTooNewError(HeaderError):
    pass


class MerkleRootMismatchError(HeaderError):
    pass


class StaleBlockError(BadParentError):
    """A block built on a tip that has since moved on."""


# --- transactions -----------------------------------------------------------


class TransactionError(ValidationError):
    """A transfer that cannot be applied to the current state."""


class BadSignatureError(TransactionError):
    pass


class NonceError(TransactionError):
    pass


class NonceReplayError(NonceError):
    pass


class NonceGapError(NonceError):
    pass


class InsufficientBalanceError(TransactionError):
    pass


class InvalidAmountError(TransactionError):
    pass


class InvalidFeeError(TransactionError):
    pass


class UnknownAccountError(TransactionError):
    pass


class SelfTransferError(TransactionError):
    pass


# --- blocks -----------------------------------------------------------------


class BlockError(ValidationError):
    """A block body that breaks a rule (coinbase, size, duplicates)."""


class BadCoinbaseError(BlockError):
    pass


class DuplicateTransactionError(BlockError):
    pass


class BlockTooLargeError(BlockError):
    pass


# --- mempool ----------------------------------------------------------------


class MempoolError(ChainError):
    """The mempool refused a transaction that may be valid on its own."""


class MempoolFullError(MempoolError):
    pass


class ReplacementRejectedError(MempoolError):
    pass


class AlreadyKnownError(MempoolError):
    pass


class TooManyPendingError(MempoolError):
    pass


# --- storage and lookup -----------------------------------------------------


class ChainNotFoundError(ChainError):
    pass


class ChainExistsError(ChainError):
    pass


class BlockNotFoundError(ChainError):
    pass


class TransactionNotFoundError(ChainError):
    pass


class ChainOfflineError(ChainError):
    """A stored chain that could not be loaded at startup: taken offline until an admin resets it."""


class HistoryUnavailableError(ChainError):
    """A header or hash older than the recent window a ``ChainState`` keeps in memory (ask the store)."""


class SnapshotError(EncodingError):
    """A stored beacon-state snapshot that cannot be decoded (corrupt, truncated or an unknown version)."""


class SnapshotUnavailableError(ChainError):
    """A consistent read needs a second connection, which an in-memory database cannot give."""


class ExportTooLargeError(ChainError):
    """A chain export would be bigger than the caller allowed; nothing of it was built."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the export is {size:,} bytes, over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit


class ParamsError(ChainError):
    """Chain parameters that do not make a workable chain."""


class WalletError(ChainError):
    """A wallet key that cannot be created, opened or used."""


class MasterKeyMismatchError(WalletError):
    """The master key is not the one this database's secrets are sealed under."""


class HashingCoreError(ChainError):
    """The hashing core broke its own contract (a found outcome without its nonces): no block."""


class VerificationError(ChainError):
    """Replaying a chain from genesis found a problem at a given height."""

    def __init__(self, height: int, cause: Exception) -> None:
        super().__init__(f"block {height}: {cause}")
        self.height = height
        self.cause = cause


# --- proof of stake ---------------------------------------------------------


class StakingError(ValidationError):
    """A proof-of-stake message, piece of evidence or registry change that breaks a rule."""


class AttestationError(StakingError):
    """An attestation whose fields cannot describe a real vote."""


class WrongChainError(StakingError):
    """A signed message made for another server's chain."""


class SlashingEvidenceError(StakingError):
    """Evidence that does not prove a slashable offence; nobody is slashed."""


class ValidatorMismatchError(SlashingEvidenceError):
    pass


class SlotMismatchError(SlashingEvidenceError):
    pass


class IdenticalMessagesError(SlashingEvidenceError):
    pass


class NotSlashableError(SlashingEvidenceError):
    pass


class ProposerSelectionError(StakingError):
    """Inputs from which no proposer can be drawn (no validators, bad seed, zero stake)."""


class FinalityError(StakingError):
    """Justification inputs that do not describe a possible epoch."""


class DepositError(StakingError):
    pass


class UnknownValidatorError(StakingError):
    pass


class ValidatorStatusError(StakingError):
    """An operation the validator's current status does not allow (not active, already exiting...)."""


class SlashingProtectionError(ChainError):
    """The signer refused: signing this message could get the validator slashed."""


class DoubleVoteRefusedError(SlashingProtectionError):
    pass


class SurroundVoteRefusedError(SlashingProtectionError):
    pass


class SourceEpochTooLowError(SlashingProtectionError):
    pass


class TargetEpochTooLowError(SlashingProtectionError):
    pass


class DoubleProposalRefusedError(SlashingProtectionError):
    pass


class BlockSlotTooLowError(SlashingProtectionError):
    pass


class InterchangeError(EncodingError):
    """An EIP-3076 slashing-protection file that cannot be imported."""


class InterchangeGenesisMismatchError(InterchangeError):
    pass


# --- rewards and penalties --------------------------------------------------


class RewardsError(StakingError):
    """Epoch participation or balances from which no rewards can be computed; nothing was paid."""


class IssuanceRateError(ParamsError):
    """A yearly issuance rate outside the range a server may choose."""


# --- signer / store (PoS adapters) -------------------------------------------


class ValidatorKeyError(WalletError):
    """A validator key that cannot be opened, or cannot sign this message (it names another validator)."""


class EnergyError(ChainError):
    """Counts or costs from which no energy figure can be computed (negative, or no baseline)."""


# --- consensus modes, proof-of-stake blocks and operations -------------------


class ConsensusConfigError(ParamsError):
    """A consensus configuration (mode, slots, Merge schedule...) that cannot make a working chain."""


class UnknownModeError(ConsensusConfigError):
    """A consensus mode other than pow, pos or hybrid (in a stored or exported config, or an input)."""


class MergeError(BlockError):
    """A proof-of-work block after the Merge, or a proof-of-stake block before it."""


class SlotError(BlockError):
    """A proof-of-stake block whose slot or time does not fit the slot clock."""


class BadProposerError(BlockError):
    """A proof-of-stake block proposed by a validator other than the slot's drawn proposer."""


class OperationsError(BlockError):
    """Block operations this block kind or mode may not carry (attestations in pure PoW...)."""


class WithdrawalMismatchError(BlockError):
    """A block whose withdrawals are not exactly ``get_expected_withdrawals`` (Capella)."""


class ExitError(StakingError):
    """A voluntary exit that is badly signed or too early."""


class DuplicateAttestationError(AttestationError):
    """A validator's vote for this target is already counted."""


class ForkChoiceError(StakingError):
    """A candidate block or vote the fork choice cannot accept."""


class FinalizedConflictError(ForkChoiceError):
    """A candidate that would revert a finalized block."""


# --- beacon node (staking as members use it) ---------------------------------


class DepositPendingError(DepositError):
    """A deposit and a transfer would share a wallet nonce: one waits for the other's block."""


class NotStakingChainError(StakingError):
    """The chain has no proof-of-stake side (created before it existed, or not in that mode)."""


class NoValidatorError(StakingError):
    """The member has no validator on this chain."""


class ChaosModeOffError(StakingError):
    """A deliberately slashable action while the server's chaos mode is off."""


class NotProposerError(StakingError):
    """Only this slot's drawn proposer can do this."""


# --- faucet --------------------------------------------------------------------


class FaucetError(ChainError):
    """A faucet claim that cannot be paid; nothing was changed (no transfer, no cooldown)."""


class NoFaucetError(FaucetError):
    """The chain was created without a faucet account at genesis."""


class FaucetEmptyError(FaucetError):
    """The faucet's points left (after its pending payouts) do not cover a claim."""


class FaucetCooldownError(FaucetError):
    """The member claimed less than the cooldown ago; ``available_at`` is when they may claim again
    (node clock, whole seconds)."""

    def __init__(self, message: str, available_at: int) -> None:
        super().__init__(message)
        self.available_at = available_at


# --- games: attack mathematics (issue 11) ------------------------------------


class GameError(ChainError):
    """Inputs from which a game's figure or simulation cannot be computed; nothing was played."""


class InvalidHashShareError(GameError):
    """A share of the hash power (an attacker's q, a selfish pool's α) outside the range its figure is
    defined for, or not an exact fraction."""


class InvalidTieBreakError(GameError):
    """A tie-break share γ outside [0, 1], or not an exact fraction."""


class InvalidConfirmationsError(GameError):
    """A number of confirmations z that is negative, not an integer, or too large to compute."""


class InvalidGiveUpError(GameError):
    """A give-up depth that is not an integer deeper than the confirmations the merchant waits for."""


class InvalidSimulationLengthError(GameError):
    """A simulation length (rounds, blocks) that is not a positive integer within the cap."""


class InvalidRiskError(GameError):
    """A risk bound (for the confirmations needed) outside (0, 1], or not an exact fraction."""


class NoSafeConfirmationsError(GameError):
    """No number of confirmations (up to the cap) brings the attacker's chance below the bound asked for."""


class InvalidPlacesError(GameError):
    """A number of decimal places to round a figure to that is not a whole number in the supported range."""
