"""``python -m chain``: the engine without Discord.

Create a local chain file, mine blocks on the hashing core, pay between named
wallets, show blocks, export, and verify a chain file or an export offline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from chain.adapters.hashcore import HashingCore, OutcomeKind, Progress
from chain.adapters.key_check import judge_master_key
from chain.adapters.node import Node
from chain.adapters.storage import Database, Store
from chain.consensus.export import (
    import_chain,
    import_consensus,
    import_consensus_changes,
    import_orphans,
    import_param_changes,
)
from chain.consensus.state import compute_difficulty
from chain.consensus.verify import verify_chain
from chain.errors import ChainError, EncodingError
from chain.events import DifficultyChanged
from chain.hashing import hash_from_display, hash_to_display
from chain.keys import MASTER_KEY_SIZE_BYTES
from chain.params import PLAYGROUND
from chain.pow.compact import decode_compact

log = logging.getLogger("chain.cli")

DEFAULT_DB = Path("data/chain.sqlite3")
MASTER_KEY_ENV = "MASTER_KEY"


def out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def load_master_key(db_path: Path) -> bytes:
    """The wallet master key: from MASTER_KEY (hex), else a key file beside the database."""
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        key = bytes.fromhex(env)
        if len(key) != MASTER_KEY_SIZE_BYTES:
            raise SystemExit(f"{MASTER_KEY_ENV} must be {MASTER_KEY_SIZE_BYTES * 2} hex digits")
        return key
    key_path = db_path.with_name(db_path.name + ".key")
    if key_path.exists():
        return bytes.fromhex(key_path.read_text().strip())
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(MASTER_KEY_SIZE_BYTES)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    log.warning("created a new wallet master key in %s: back it up, wallets cannot be opened without it", key_path)
    return key


def format_points(n: int) -> str:
    return f"{n:,} pts"


async def open_node(args: argparse.Namespace, core: HashingCore | None = None, *, wallets: bool = False) -> Node:
    """The node on ``args.db``.  Only commands that open wallets (``wallets``) need the master key:
    reading a chain never creates a key file beside a database (the bot's has its own key), and a
    key that does not belong to the database is refused before anything is sealed with it."""
    db_path = Path(args.db)
    master_key = None
    if wallets:
        master_key = load_master_key(db_path)
        judge_master_key(
            master_key, await Database.sealed_secrets(db_path), source="the master key", database=str(db_path)
        )
    store = await Store.open(db_path)
    node = Node(store, clock=time.time, randomness=os.urandom, master_key=master_key, hashing_core=core)
    await node.load()
    return node


async def cmd_init(args: argparse.Namespace) -> int:
    params = PLAYGROUND.evolve(
        target_spacing_s=args.spacing,
        retarget_window_blocks=args.window,
        initial_subsidy_points=args.subsidy,
        halving_interval_blocks=args.halving,
    )
    core = None if args.bits is not None else HashingCore(args.workers, cpu_percent=args.cpu_percent)
    try:
        if core is not None:
            await core.start()
            out(f"measuring the hashing core ({core.workers} workers)…")
        node = await open_node(args, core)
        state = await node.create_chain(args.chain_id, params, initial_bits=args.bits)
        bits = state.tip.bits
        out(f"created chain {args.chain_id} in {args.db}")
        out(f"genesis {state.tip_hash[::-1].hex()}")
        out(
            f"first bits {bits:#010x} (difficulty {compute_difficulty(bits, params):,}), "
            f"target spacing {params.target_spacing_s}s, retarget every {params.retarget_window_blocks} blocks"
        )
        await node.store.close()
    finally:
        if core is not None:
            await core.close()
    return 0


CLEAR_LINE = "\r\x1b[2K"


def _progress_printer(height: int, live: bool) -> Callable[[Progress], None]:
    """Redraw one line on a terminal; elsewhere print a line every few seconds."""
    interval = 0.5 if live else 5.0
    last = [0.0]

    def on_progress(p: Progress) -> None:
        if p.elapsed - last[0] < interval:
            return
        last[0] = p.elapsed
        line = (
            f"  block {height}: {p.hashes_tried:>12,} hashes  {p.rate:>10,} H/s  "
            f"best {p.best_hash[:16]}…  {p.elapsed:5.1f}s"
        )
        out(CLEAR_LINE + line if live else line, end="" if live else "\n")

    return on_progress


async def cmd_mine(args: argparse.Namespace) -> int:
    core = HashingCore(args.workers, cpu_percent=args.cpu_percent)
    await core.start()
    live = sys.stdout.isatty()
    try:
        node = await open_node(args, core, wallets=True)
        runtime = node.chain(args.chain_id)
        core.notify_tip(args.chain_id, runtime.state.tip_hash)
        for _ in range(args.blocks):
            height = runtime.state.height + 1
            result = await node.mine(
                args.chain_id, args.miner, on_progress=_progress_printer(height, live), deadline_s=args.timeout
            )
            if live:
                out(CLEAR_LINE, end="")
            outcome = result.outcome
            if result.block is None or result.effects is None:
                out(f"block {height}: {outcome.kind.value} after {outcome.hashes_tried:,} hashes")
                if outcome.kind is OutcomeKind.TIMEOUT:
                    break
                continue
            rate = int(outcome.hashes_tried / outcome.elapsed) if outcome.elapsed > 0 else 0
            out(
                f"block {result.effects.height} {result.block.header.hash_hex()}  nonce {outcome.nonce} "
                f"extra {outcome.extra_nonce}  {outcome.hashes_tried:,} hashes in {outcome.elapsed:.1f}s "
                f"({rate:,} H/s)  reward {format_points(result.block.coinbase.amount)} to {args.miner}"
            )
            for event in result.effects.events:
                if isinstance(event, DifficultyChanged):
                    out(f"  retarget: {event.sentence}")
        await node.store.close()
    finally:
        await core.close()
    return 0


async def cmd_pay(args: argparse.Namespace) -> int:
    node = await open_node(args, wallets=True)
    recipient = await node.address(args.chain_id, args.to)
    admission = await node.pay(args.chain_id, args.sender, recipient, args.amount, args.fee)
    out(f"queued transfer {hash_to_display(admission.entry.txid)}: {args.sender} -> {args.to} "
        f"{format_points(args.amount)} (fee {args.fee}, nonce {admission.entry.tx.nonce})")
    if admission.replaced is not None:
        out(f"  replaced pending transfer {hash_to_display(admission.replaced.txid)}")
    await node.store.close()
    return 0


async def cmd_balance(args: argparse.Namespace) -> int:
    node = await open_node(args)
    node.chain(args.chain_id)  # a clear error for a chain that does not exist
    wallets = await node.store.wallets.all(args.chain_id)
    if args.name:
        wallets = [w for w in wallets if w.owner == args.name]
    for wallet in wallets:
        account = node.account(args.chain_id, wallet.pubkey)
        out(f"{wallet.owner:<16} {format_points(account.balance):>16}  nonce {account.nonce}  {wallet.pubkey.hex()}")
    await node.store.close()
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    node = await open_node(args)
    params = node.chain(args.chain_id).state.params
    if args.block.isdigit():
        block = await node.store.blocks.get_block(args.chain_id, height=int(args.block))
    else:
        block = await node.store.blocks.get_block(args.chain_id, block_hash=hash_from_display(args.block))
    header = block.header
    out(f"block {block.height}  {header.hash_hex()}")
    out(f"  prev      {hash_to_display(header.prev_hash)}")
    out(f"  merkle    {hash_to_display(header.merkle_root)}")
    out(f"  time      {header.time} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(header.time))} UTC)")
    out(f"  bits      {header.bits:#010x}  target {decode_compact(header.bits).value:064x}")
    out(f"  difficulty {compute_difficulty(header.bits, params):,}")
    out(f"  nonce     {header.nonce}  extra nonce {block.coinbase.extra_nonce}")
    out(f"  coinbase  {format_points(block.coinbase.amount)} to {block.coinbase.miner.hex()}")
    for tx in block.transfers:
        out(f"  transfer  {hash_to_display(tx.txid())}  {tx.sender.hex()[:16]}… -> {tx.recipient.hex()[:16]}…  "
            f"{format_points(tx.amount)} fee {tx.fee} nonce {tx.nonce}")
    await node.store.close()
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    if args.file:
        try:
            document = json.loads(Path(args.file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EncodingError(f"cannot read {args.file}: {exc}") from exc
        params, chain_id, blocks = import_chain(document)
        started = time.perf_counter()
        _, report = verify_chain(
            params,
            chain_id,
            blocks,
            now=int(time.time()),
            param_changes=import_param_changes(document),
            consensus=import_consensus(document),
            consensus_changes=import_consensus_changes(document),
            orphans=import_orphans(document),
        )
    else:
        node = await open_node(args)
        started = time.perf_counter()
        report = await node.verify(args.chain_id)
        node.close()
        await node.store.close()
    elapsed = time.perf_counter() - started
    out("OK: " + report.summary())
    out(f"   in {elapsed:.2f}s")
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    node = await open_node(args)
    # Streamed from one read snapshot into the file: never the whole chain in memory.
    with open(args.file, "wb") as file:
        summary = await node.export_to(args.chain_id, file)
    orphans = f" and {summary.orphans} orphaned blocks" if summary.orphans else ""
    out(
        f"exported {summary.height + 1} blocks{orphans} to {args.file}; "
        f"check it with: python -m chain verify {args.file}"
    )
    node.close()
    await node.store.close()
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    """Everything once, on a fresh chain with quick blocks."""
    args.db = str(Path(args.db))
    if Path(args.db).exists():
        out(f"using existing {args.db}")
    else:
        args.spacing, args.window, args.subsidy, args.halving, args.bits = 3, 5, 50, 100, None
        await cmd_init(args)
    args.miner, args.blocks, args.timeout = "alice", 3, 120
    await cmd_mine(args)
    args.sender, args.to, args.amount, args.fee = "alice", "bob", 12, 1
    await cmd_pay(args)
    args.miner, args.blocks = "bob", 1
    await cmd_mine(args)
    args.name = None
    await cmd_balance(args)
    args.file = None
    await cmd_verify(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chain", description=__doc__)
    parser.add_argument("--db", default=str(DEFAULT_DB), help="chain database file (default %(default)s)")
    parser.add_argument("--chain-id", type=int, default=1, help="which chain in the database (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="hashing worker processes (default: all cores)")
    parser.add_argument(
        "--cpu-percent", type=int, default=100, choices=range(1, 101), metavar="1..100",
        help="most of the machine's CPU the hashing may use (default 100)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a chain, calibrating its first difficulty on this machine")
    p.add_argument("--spacing", type=int, default=PLAYGROUND.target_spacing_s, help="target seconds per block")
    p.add_argument("--window", type=int, default=PLAYGROUND.retarget_window_blocks, help="retarget window, blocks")
    p.add_argument("--subsidy", type=int, default=PLAYGROUND.initial_subsidy_points, help="first block reward")
    p.add_argument("--halving", type=int, default=PLAYGROUND.halving_interval_blocks, help="blocks per halving")
    p.add_argument("--bits", type=lambda s: int(s, 0), default=None, help="skip calibration, use these bits")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("mine", help="mine N blocks on the hashing core")
    p.add_argument("blocks", type=int, nargs="?", default=1)
    p.add_argument("--miner", default="miner", help="wallet name that gets the reward")
    p.add_argument("--timeout", type=float, default=None, help="give up on a block after this many seconds")
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser("pay", help="queue a signed transfer between named wallets")
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("amount", type=int)
    p.add_argument("--fee", type=int, default=0)
    p.set_defaults(func=cmd_pay)

    p = sub.add_parser("balance", help="wallet balances")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser("show", help="show a block by height or hash")
    p.add_argument("block")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "verify", help="replay the chain (or an exported FILE) from genesis, and check every orphaned block"
    )
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="write the chain as JSON that `verify FILE` checks offline")
    p.add_argument("file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="create, mine, pay, mine and verify on a quick chain")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = asyncio.run(args.func(args))
        return code
    except ChainError as exc:
        out(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
