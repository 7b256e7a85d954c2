"""`python -m chain`: init, mine on the hashing core, pay, show, export, verify."""

import json

import pytest

from chain.__main__ import main


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_KEY", "11" * 32)
    return str(tmp_path / "cli.sqlite3")


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_full_round_trip(db, tmp_path, capsys):
    code, text = run(capsys, "--db", db, "init", "--bits", "0x207fffff", "--spacing", "5")
    assert code == 0 and "created chain 1" in text and "0x207fffff" in text

    code, text = run(capsys, "--db", db, "--workers", "1", "mine", "2", "--miner", "alice")
    assert code == 0
    assert "block 1 " in text and "block 2 " in text and "reward 50 pts to alice" in text

    code, text = run(capsys, "--db", db, "pay", "--from", "alice", "--to", "bob", "30", "--fee", "2")
    assert code == 0 and "alice -> bob 30 pts (fee 2, nonce 0)" in text

    code, text = run(capsys, "--db", db, "--workers", "1", "mine", "--miner", "carol")
    assert code == 0 and "reward 52 pts to carol" in text

    code, text = run(capsys, "--db", db, "balance")
    balances = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in text.splitlines()}
    assert balances == {"alice": 68, "bob": 30, "carol": 52}

    code, text = run(capsys, "--db", db, "show", "3")
    assert code == 0 and "transfer" in text and "coinbase  52 pts" in text
    block_hash = text.split()[2]
    code, text = run(capsys, "--db", db, "show", block_hash)
    assert code == 0 and f"block 3  {block_hash}" in text

    code, text = run(capsys, "--db", db, "verify")
    assert code == 0 and "verified 4 blocks" in text and "150 points" in text

    export = tmp_path / "chain.json"
    code, _ = run(capsys, "--db", db, "export", str(export))
    assert code == 0
    code, text = run(capsys, "verify", str(export))
    assert code == 0 and "OK: verified 4 blocks" in text

    document = json.loads(export.read_text())
    raw = bytearray.fromhex(document["blocks"][2])
    raw[80 + 1 + 4 + 32] += 1  # the coinbase amount's low byte: the miner pays itself one more point
    document["blocks"][2] = raw.hex()
    export.write_text(json.dumps(document))
    code, text = run(capsys, "verify", str(export))
    assert code == 2 and text.startswith("error: block 2: merkle root")


def test_invalid_payment_is_a_clear_error(db, capsys):
    run(capsys, "--db", db, "init", "--bits", "0x207fffff")
    code, text = run(capsys, "--db", db, "pay", "--from", "nobody", "--to", "bob", "5")
    assert code == 2 and "never held any points" in text


def test_invalid_unknown_chain(db, capsys):
    code, text = run(capsys, "--db", db, "--chain-id", "9", "balance")
    assert code == 2 and "no chain 9" in text


def test_reading_a_database_creates_no_key_file_and_a_wrong_key_opens_no_wallet(db, tmp_path, capsys, monkeypatch):
    """Issue 9: `python -m chain export` on the bot's database silently made a second master key
    beside it. Reading needs no key; commands that open wallets check theirs against the database."""
    from pathlib import Path

    run(capsys, "--db", db, "init", "--bits", "0x207fffff")
    code, _ = run(capsys, "--db", db, "--workers", "1", "mine", "1", "--miner", "alice")  # seals alice's wallet
    assert code == 0
    monkeypatch.delenv("MASTER_KEY")
    key_file = Path(db + ".key")
    for argv in (("show", "1"), ("balance",), ("verify",), ("export", str(tmp_path / "out.json"))):
        code, text = run(capsys, "--db", db, *argv)
        assert code == 0, (argv, text)
    assert not key_file.exists()

    monkeypatch.setenv("MASTER_KEY", "22" * 32)  # not the key alice's wallet is sealed under
    code, text = run(capsys, "--db", db, "pay", "--from", "alice", "--to", "bob", "5")
    assert code == 2 and "error:" in text and "22" * 32 not in text
    code, text = run(capsys, "--db", db, "balance")
    assert "bob" not in text  # nothing was sealed under the wrong key


def test_cpu_percent_caps_the_hashing_and_is_checked(db, capsys):
    code, _ = run(capsys, "--db", db, "init", "--bits", "0x207fffff", "--spacing", "5")
    assert code == 0
    code, text = run(capsys, "--db", db, "--workers", "1", "--cpu-percent", "50", "mine", "1", "--miner", "alice")
    assert code == 0 and "block 1 " in text
    for bad in ("0", "101"):
        with pytest.raises(SystemExit):
            main(["--db", db, "--cpu-percent", bad, "balance"])
