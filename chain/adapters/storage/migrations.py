"""The schema: numbered migrations, each run once, shared by every repository of ``chain/adapters/storage``
and ``bot/storage.py`` (one database, one version number).  Never edit a migration: add one."""

from __future__ import annotations

# An SQL function registered on every connection, for migration 7's back-fill of display hashes.
REVERSE_BYTES = "playground_reverse_bytes"


def reverse_bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)[::-1]


MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE chains (
                chain_id INTEGER PRIMARY KEY,
                params TEXT NOT NULL,
                genesis_hash BLOB NOT NULL,
                created_at INTEGER NOT NULL
            )""",
            """CREATE TABLE blocks (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                hash BLOB NOT NULL,
                miner BLOB NOT NULL,
                time INTEGER NOT NULL,
                raw BLOB NOT NULL,
                PRIMARY KEY (chain_id, height),
                UNIQUE (chain_id, hash)
            )""",
            """CREATE TABLE accounts (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                pubkey BLOB NOT NULL,
                balance INTEGER NOT NULL CHECK (balance >= 0),
                nonce INTEGER NOT NULL CHECK (nonce >= 0),
                PRIMARY KEY (chain_id, pubkey)
            ) WITHOUT ROWID""",
            """CREATE TABLE transactions (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                txid BLOB NOT NULL,
                height INTEGER NOT NULL,
                position INTEGER NOT NULL,
                sender BLOB,
                recipient BLOB NOT NULL,
                amount INTEGER NOT NULL,
                fee INTEGER NOT NULL,
                PRIMARY KEY (chain_id, txid)
            ) WITHOUT ROWID""",
            "CREATE INDEX transactions_sender ON transactions (chain_id, sender, height)",
            "CREATE INDEX transactions_recipient ON transactions (chain_id, recipient, height)",
            """CREATE TABLE mempool (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                txid BLOB NOT NULL,
                arrival INTEGER NOT NULL,
                raw BLOB NOT NULL,
                PRIMARY KEY (chain_id, txid)
            ) WITHOUT ROWID""",
            """CREATE TABLE wallets (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                pubkey BLOB NOT NULL,
                sealed_key BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner),
                UNIQUE (chain_id, pubkey)
            )""",
            """CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                chain_id INTEGER NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                delivered_at INTEGER
            )""",
            "CREATE INDEX outbox_pending ON outbox (chain_id, id) WHERE delivered_at IS NULL",
        ),
    ),
    (
        2,
        (
            # One webhook per server; the URL is a secret, so it is stored sealed.
            """CREATE TABLE webhooks (
                chain_id INTEGER PRIMARY KEY,
                channel_id INTEGER NOT NULL,
                webhook_id INTEGER NOT NULL,
                sealed_url BLOB NOT NULL,
                disabled_reason TEXT,
                updated_at INTEGER NOT NULL
            )""",
            # Per-server settings that are not consensus rules (session length...).
            """CREATE TABLE server_settings (
                chain_id INTEGER PRIMARY KEY,
                settings TEXT NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            # Rule changes: proposed (height NULL) until a block commits to them.
            """CREATE TABLE param_changes (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER,
                params TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX param_changes_height ON param_changes (chain_id, height)",
            "CREATE UNIQUE INDEX param_changes_proposal ON param_changes (chain_id) WHERE height IS NULL",
        ),
    ),
    (
        4,
        (
            # Proof-of-stake validator keys, custodied and sealed like wallet keys. No
            # foreign key to chains: like wallets they outlive a reset of the chain.
            """CREATE TABLE validator_keys (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                pubkey BLOB NOT NULL,
                sealed_key BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner),
                UNIQUE (chain_id, pubkey)
            )""",
            # EIP-3076 minimal record per validator. It outlives a reset on purpose:
            # signing roots name the chain id, not the genesis, so a vote signed on the
            # old chain could be paired with one on the new chain as slashing evidence.
            """CREATE TABLE slashing_protection (
                chain_id INTEGER NOT NULL,
                pubkey BLOB NOT NULL,
                record TEXT NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, pubkey)
            ) WITHOUT ROWID""",
            # Opaque proof-of-stake state at a block, written with the block; gone with the chain.
            """CREATE TABLE beacon_snapshots (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                blob BLOB NOT NULL,
                PRIMARY KEY (chain_id, height)
            ) WITHOUT ROWID""",
            # Per-validator toggles that are not consensus rules.
            """CREATE TABLE validator_settings (
                chain_id INTEGER NOT NULL,
                owner TEXT NOT NULL,
                auto_attest INTEGER NOT NULL CHECK (auto_attest IN (0, 1)),
                PRIMARY KEY (chain_id, owner)
            ) WITHOUT ROWID""",
            # Work counters for the energy comparison. No foreign key to chains: a signer
            # may count a signature for a chain the store has not created (or just reset);
            # delete_chain removes the row explicitly.
            """CREATE TABLE energy (
                chain_id INTEGER PRIMARY KEY,
                pow_cpu_ns INTEGER NOT NULL DEFAULT 0 CHECK (pow_cpu_ns >= 0),
                pos_sign_ops INTEGER NOT NULL DEFAULT 0 CHECK (pos_sign_ops >= 0),
                pos_verify_ops INTEGER NOT NULL DEFAULT 0 CHECK (pos_verify_ops >= 0)
            )""",
        ),
    ),
    (
        5,
        (
            # NULL: a chain created before proof of stake existed (plain proof of work).
            "ALTER TABLE chains ADD COLUMN consensus TEXT",
            # Merge schedules committed by blocks (height) or proposed for the next block (NULL).
            """CREATE TABLE consensus_changes (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER,
                consensus TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX consensus_changes_proposal ON consensus_changes (chain_id) WHERE height IS NULL",
            # Deposits, exits, votes and slashing evidence waiting for a block: acknowledged, so durable.
            """CREATE TABLE op_pool (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                op_id BLOB NOT NULL,
                kind INTEGER NOT NULL,
                raw BLOB NOT NULL,
                arrival INTEGER NOT NULL,
                PRIMARY KEY (chain_id, op_id)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        6,
        (
            # A fixed value sealed under the master key the database's secrets are sealed
            # under: at startup it tells a wrong key apart before anything is sealed with it.
            """CREATE TABLE key_check (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                sealed BLOB NOT NULL,
                created_at INTEGER NOT NULL
            )""",
        ),
    ),
    (
        7,
        (
            # Hashes as members see them (byte-reversed, chain.hashing): a typed hash prefix is then
            # a range of this column, which the index answers without reading every block.
            "ALTER TABLE blocks ADD COLUMN display_hash BLOB",
            f"UPDATE blocks SET display_hash = {REVERSE_BYTES}(hash)",
            "CREATE INDEX blocks_display_hash ON blocks (chain_id, display_hash)",
            # Blocks mined per miner at startup: one pass over this index, not over every block.
            "CREATE INDEX blocks_miner ON blocks (chain_id, miner)",
        ),
    ),
    (
        8,
        (
            # Pruning delivered announcements finds the old ones through this index instead of
            # scanning the whole outbox on every pass (most passes have nothing old enough).
            "CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
        ),
    ),
    (
        9,
        (
            # What staking did to a wallet (deposits, stake paid back, slashing penalties), from the
            # events of the block that did it: the outbox is pruned once delivered, so /wallet history
            # reads these instead. Blocks appended before this migration have no rows here.
            """CREATE TABLE stake_history (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                height INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                wallet BLOB NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                PRIMARY KEY (chain_id, height, seq)
            ) WITHOUT ROWID""",
            "CREATE INDEX stake_history_wallet ON stake_history (chain_id, wallet, height)",
        ),
    ),
    (
        10,
        (
            # Transaction ids as members see them (byte-reversed, like block hashes in migration 7):
            # `/chain tx` takes a typed prefix, a range of this column that the index answers.
            "ALTER TABLE transactions ADD COLUMN display_txid BLOB",
            f"UPDATE transactions SET display_txid = {REVERSE_BYTES}(txid)",
            "CREATE INDEX transactions_display_txid ON transactions (chain_id, display_txid)",
            # Its autocomplete lists the newest transactions first: read backwards along this index.
            "CREATE INDEX transactions_height ON transactions (chain_id, height, position)",
        ),
    ),
    (
        11,
        (
            # When each member last claimed from the chain's faucet (node clock): the cooldown
            # outlives a restart. Written in the transaction that pools the payout; a reset
            # (a new chain, a new faucet) clears it with the chain.
            """CREATE TABLE faucet_claims (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                owner TEXT NOT NULL,
                claimed_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, owner)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        12,
        (
            # The one message per server that shows the running epoch's slots (the slot driver
            # edits it as slots pass), so a restart keeps editing it instead of posting another.
            # Gone with the chain: a new chain's first slot posts a new message.
            """CREATE TABLE epoch_messages (
                chain_id INTEGER PRIMARY KEY REFERENCES chains(chain_id) ON DELETE CASCADE,
                channel_id INTEGER NOT NULL,
                message_id INTEGER NOT NULL,
                epoch INTEGER NOT NULL CHECK (epoch >= 0),
                updated_at INTEGER NOT NULL
            )""",
        ),
    ),
    (
        14,
        (
            # The bot's teaching record for /learn (bot/storage.py), not a consensus fact: when a member
            # started each lesson (the tip then: a retarget counts from there), when they completed it
            # and the reward transfer that paid them (NULL when the chain had no points to give).
            # Gone with the chain: a reset starts everyone's lessons over on the new chain.
            """CREATE TABLE lesson_progress (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                member TEXT NOT NULL,
                lesson TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                start_height INTEGER NOT NULL CHECK (start_height >= 0),
                completed_at INTEGER,
                reward_txid BLOB,
                reward_points INTEGER NOT NULL DEFAULT 0 CHECK (reward_points >= 0),
                PRIMARY KEY (chain_id, member, lesson)
            ) WITHOUT ROWID""",
        ),
    ),
)
