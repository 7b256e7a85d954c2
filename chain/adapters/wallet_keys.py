"""The members' wallet keys: made on first use, sealed at rest with the master key, opened per use.

One ``WalletKeys`` per node (chain/adapters/node.py, which hands every wallet call here).  Keys stay
sealed in memory too; what is remembered in the clear is public only (addresses, and who owns which
public key), and wallets outlive chain resets, so none of it goes stale.  (Validator keys are the
signer's, chain/adapters/signer.py.)
"""

from __future__ import annotations

from collections.abc import Callable

from chain.adapters.storage import Store, StoredWallet
from chain.errors import WalletError
from chain.keys import SigningKey, open_key, seal_key, wallet_aad

Randomness = Callable[[int], bytes]


class WalletKeys:
    """Custody of every chain's wallet keys, by (chain, owner)."""

    def __init__(
        self, store: Store, *, master_key: bytes | None, randomness: Randomness, now: Callable[[], int]
    ) -> None:
        self.store = store
        self.randomness = randomness
        # The node's clock, in whole seconds: when a wallet was created.
        self.now = now
        self._master_key = master_key
        # Public keys only: wallets outlive chain resets, so entries never go stale.
        self._addresses: dict[tuple[int, str], bytes] = {}
        # Sealed as stored: keys stay encrypted in memory too, and are opened per use.
        self._sealed_wallets: dict[tuple[int, str], StoredWallet] = {}
        # Per chain, public key -> owner, read from the store once and then kept current.
        self._owners: dict[int, dict[bytes, str]] = {}
        self._wallets_created = 0

    def _wallet_aad(self, chain_id: int, owner: str) -> bytes:
        return wallet_aad(chain_id, owner)

    async def stored(self, chain_id: int, owner: str) -> StoredWallet | None:
        """The owner's sealed wallet as stored, or None if it was never made (read, never created)."""
        return self._sealed_wallets.get((chain_id, owner)) or await self.store.wallets.get(chain_id, owner)

    async def wallet(self, chain_id: int, owner: str) -> SigningKey:
        """The owner's key on this chain, created (and sealed at rest) on first use."""
        if self._master_key is None:
            raise WalletError("this node was opened without a master key: it reads chains but opens no wallet")
        stored = await self.stored(chain_id, owner)
        if stored is None:
            key = SigningKey(self.randomness(32))
            sealed = seal_key(self._master_key, key, self.randomness(12), self._wallet_aad(chain_id, owner))
            stored = await self.store.wallets.insert(chain_id, StoredWallet(owner, key.public_key, sealed), self.now())
            self._wallets_created += 1
            if chain_id in self._owners:
                self._owners[chain_id][stored.pubkey] = owner
        key = open_key(self._master_key, stored.sealed_key, self._wallet_aad(chain_id, owner))
        if key.public_key != stored.pubkey:
            raise WalletError(f"wallet of {owner} does not match its public key")
        self._sealed_wallets[(chain_id, owner)] = stored
        return key

    async def address(self, chain_id: int, owner: str) -> bytes:
        """The owner's public key; remembered, since almost every command needs it."""
        cached = self._addresses.get((chain_id, owner))
        if cached is None:
            cached = (await self.wallet(chain_id, owner)).public_key
            self._addresses[(chain_id, owner)] = cached
        return cached

    async def owners(self, chain_id: int) -> dict[bytes, str]:
        """Public key -> owner of every wallet on this chain (a live view: do not mutate)."""
        owners = self._owners.get(chain_id)
        if owners is None:
            created = self._wallets_created
            owners = {w.pubkey: w.owner for w in await self.store.wallets.all(chain_id)}
            # A wallet created while we read may be missing: use the read, but don't keep it.
            if created == self._wallets_created:
                owners = self._owners.setdefault(chain_id, owners)
        return owners
