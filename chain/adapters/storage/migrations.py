"""The schema: numbered migrations, each run once, shared by every repository of ``chain/adapters/storage``
and ``bot/storage.py`` (one database, one version number).  Never edit a migration: add one."""

from __future__ import annotations

from chain.consensus.tree import compute_header_work
from chain.errors import CompactBitsError
from chain.pow.compact import UINT256_MASK
from chain.pow.header import HEADER_SIZE_BYTES, BlockHeader

# An SQL function registered on every connection, for migration 7's back-fill of display hashes.
REVERSE_BYTES = "playground_reverse_bytes"
# Two more, for migration 13's back-fill of the block tree: a stored block's own work from its
# header's bits, and the sum of two works (cumulative work exceeds SQLite's 64-bit integers).
HEADER_WORK = "playground_header_work"
ADD_WORK = "playground_add_work"
# Work is stored as a 32-byte big-endian unsigned integer: byte order is numeric order.
WORK_SIZE_BYTES = 32


def reverse_bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)[::-1]


def encode_work(work: int) -> bytes:
    return work.to_bytes(WORK_SIZE_BYTES, "big")


def decode_work(value: bytes) -> int:
    return int.from_bytes(value, "big")


def compute_stored_block_work(bits: int) -> int:
    """The own work the tree records for a stored block with these header ``bits``.

    Core's ``GetBlockProof``. The chain's proof-of-work limit is not needed: a stored block passed
    validation, so its target is within the limit, and the work depends on the target alone. A
    proof-of-stake block carries no proof of work (bits 0, no target): it counts 1, the least a
    block can add (``BlockTree`` requires at least 1), so its work tree prefers the longer branch;
    fork choice on a proof-of-stake chain is LMD-GHOST's votes, not this number."""
    try:
        return compute_header_work(bits, UINT256_MASK)
    except CompactBitsError:
        return 1


def header_work(raw: bytes) -> bytes:
    """The own work of a stored block (``raw`` starts with its 80-byte header), encoded."""
    bits = BlockHeader.deserialize(bytes(raw)[:HEADER_SIZE_BYTES]).bits
    return encode_work(compute_stored_block_work(bits))


def add_work(a: bytes, b: bytes) -> bytes:
    return encode_work(decode_work(a) + decode_work(b))


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
        13,
        (
            # Every valid block, not only the main line (issue 11): one row per block of the tree.
            # `blocks` stays the main chain, so every reader of it is unchanged; a block is on the
            # main chain exactly when `raw` here is NULL (its `blocks` row holds it), and off it
            # (a side block, or one a reorg disconnected) when `raw` holds it. `work` and
            # `chain_work` (the block's own proof and the sum down to genesis, Core's nChainWork)
            # are 32-byte big-endian integers: they exceed 64 bits. `sequence` is the order the
            # node first saw the block, so a tree rebuilt at startup breaks ties the same way.
            # `undo` is the BlockUndo record (chain/consensus/undo.py) that takes the block back;
            # NULL for the genesis block and blocks stored before this migration: a reorg cannot
            # disconnect them.
            """CREATE TABLE block_tree (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                hash BLOB NOT NULL,
                parent_hash BLOB NOT NULL,
                height INTEGER NOT NULL CHECK (height >= 0),
                work BLOB NOT NULL CHECK (length(work) = 32),
                chain_work BLOB NOT NULL CHECK (length(chain_work) = 32),
                sequence INTEGER NOT NULL CHECK (sequence >= 0),
                raw BLOB,
                undo BLOB,
                PRIMARY KEY (chain_id, hash),
                UNIQUE (chain_id, sequence)
            )""",
            "CREATE INDEX block_tree_parent ON block_tree (chain_id, parent_hash)",
            # Back-fill: each existing chain's main line, genesis up, seen in height order.
            f"""INSERT INTO block_tree (chain_id, hash, parent_hash, height, work, chain_work, sequence)
            WITH RECURSIVE line (chain_id, height, hash, parent_hash, work, chain_work) AS (
                SELECT chain_id, 0, hash, substr(raw, 5, 32), {HEADER_WORK}(raw), {HEADER_WORK}(raw)
                FROM blocks WHERE height = 0
                UNION ALL
                SELECT b.chain_id, b.height, b.hash, substr(b.raw, 5, 32), {HEADER_WORK}(b.raw),
                       {ADD_WORK}(line.chain_work, {HEADER_WORK}(b.raw))
                FROM line JOIN blocks AS b ON b.chain_id = line.chain_id AND b.height = line.height + 1
            )
            SELECT chain_id, hash, parent_hash, height, work, chain_work, height FROM line""",
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
    (
        15,
        (
            # The blocks off the main chain (orphans: their bytes are in the tree row), by height:
            # /chain block counts the ones competing at a height, /chain forks, export and verify list
            # them, all without scanning the chain's main line. Main-chain rows (raw NULL) are not in
            # it, so appending a block costs nothing more.
            "CREATE INDEX block_tree_orphans ON block_tree (chain_id, height) WHERE raw IS NOT NULL",
        ),
    ),
    (
        16,
        (
            # Every switch of a chain's main branch (kind 'reorg') and every heavier branch refused
            # because it would take a finalized block off ('refused'), written by the store in the
            # reorg's or the side block's own transaction: /learn's reorg lessons check these, so a
            # lesson is passed by a real reorg, never by what a member types. seq counts 1, 2, ... per chain.
            """CREATE TABLE reorg_log (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL CHECK (seq >= 1),
                kind TEXT NOT NULL CHECK (kind IN ('reorg', 'refused')),
                height INTEGER NOT NULL CHECK (height >= 0),
                depth INTEGER NOT NULL CHECK (depth >= 0),
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, seq)
            ) WITHOUT ROWID""",
            # Who took part: the miners of the blocks a reorg took off ('orphaned'), and of the branch
            # that took over or was refused ('branch').
            """CREATE TABLE reorg_log_miners (
                chain_id INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                miner BLOB NOT NULL CHECK (length(miner) = 32),
                role TEXT NOT NULL CHECK (role IN ('orphaned', 'branch')),
                PRIMARY KEY (chain_id, seq, role, miner),
                FOREIGN KEY (chain_id, seq) REFERENCES reorg_log (chain_id, seq) ON DELETE CASCADE
            ) WITHOUT ROWID""",
            # The last reorg_log seq when a member started a lesson: a reorg lesson counts only later ones.
            "ALTER TABLE lesson_progress ADD COLUMN start_reorg_seq INTEGER NOT NULL DEFAULT 0 "
            "CHECK (start_reorg_seq >= 0)",
        ),
    ),
    (
        17,
        (
            # The bot's classroom dashboard (bot/dashboard.py): each server's link generation. Links carry
            # the generation they were made in; /playground dashboard revoke:True bumps it, and every
            # older link is refused. Not tied to the chain: a reset must not bring revoked links back.
            """CREATE TABLE dashboard_links (
                chain_id INTEGER PRIMARY KEY,
                generation INTEGER NOT NULL CHECK (generation >= 0),
                updated_at INTEGER NOT NULL
            )""",
        ),
    ),
    (
        18,
        (
            # What each epoch's end recorded (chain/consensus/stake_chart_data.py), written with the
            # block whose slot ended the epoch and deleted with it when a reorg takes it off: the
            # participation chart's history, which the outbox (pruned once delivered) and the one
            # beacon snapshot kept cannot give.  Epochs that ended before this migration have no rows.
            """CREATE TABLE epoch_participation (
                chain_id INTEGER NOT NULL REFERENCES chains(chain_id) ON DELETE CASCADE,
                epoch INTEGER NOT NULL CHECK (epoch >= 0),
                height INTEGER NOT NULL CHECK (height >= 0),
                active_units INTEGER NOT NULL CHECK (active_units >= 0),
                attesting_units INTEGER NOT NULL CHECK (attesting_units >= 0),
                finality_delay INTEGER NOT NULL CHECK (finality_delay >= 0),
                in_leak INTEGER NOT NULL CHECK (in_leak IN (0, 1)),
                justified_epoch INTEGER,
                finalized_epoch INTEGER,
                PRIMARY KEY (chain_id, epoch)
            )""",
            # A disconnected block's rows are found by its height.
            "CREATE INDEX epoch_participation_height ON epoch_participation (chain_id, height)",
        ),
    ),
)
