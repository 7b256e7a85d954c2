"""Architecture rules, checked on the source: import direction and engine purity."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"bot": 0, "cogs": 1, "chain": 2}
# chain/'s folders are its layers, in order; a module may import its own folder and the layers
# before it (pow and ledger share a rank and never import each other). The top-level modules are the
# vocabulary every layer uses, except the front door (playground) and the command line.
CHAIN_LAYERS = {"vocabulary": 0, "pow": 1, "ledger": 1, "pos": 2, "consensus": 3, "adapters": 4, "front door": 5}
CHAIN_FRONT_DOOR = {"playground", "__main__"}
IMPURE_MODULES = {"asyncio", "aiosqlite", "sqlite3", "time", "random", "os", "socket", "multiprocessing", "discord"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_one_way(package):
    for path in python_files(package):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in LAYERS:
                assert LAYERS[top] >= LAYERS[package], f"{path.relative_to(ROOT)} imports {name}: upward import"


# What a cog may import from the engine: the façade, and modules of values, read models, errors and
# pure formatting math. Node, BeaconNode, the store, runtimes and the consensus internals (state,
# verify, pow, compact, mempool...) are reached only through chain.playground.
COG_CHAIN_IMPORTS = {
    "chain.playground",  # the façade: the one thing cogs call for a server's chain
    "chain.errors",  # typed refusals, turned into ephemeral replies
    "chain.events", "chain.hashing", "chain.params", "chain.mode", "chain.consensus.block",
    "chain.ledger.transaction", "chain.pos.attestation", "chain.pos.staking", "chain.pos.rewards",
    "chain.pos.beacon", "chain.pos.proposer",  # value types and constants that embeds format
}
# The wiring the bot hands the cogs: it names the engine's halves only to build the façade.
COG_WIRING = {
    ROOT / "cogs" / "services.py": {"chain.adapters.node", "chain.adapters.beacon_node", "chain.adapters.hashcore"}
}


def test_cogs_reach_the_engine_only_through_the_facade():
    for path in python_files("cogs"):
        allowed = COG_CHAIN_IMPORTS | COG_WIRING.get(path, set())
        for name in imports_of(path):
            if name.split(".")[0] == "chain":
                assert name in allowed, (
                    f"{path.relative_to(ROOT)} imports {name}: cogs call chain.playground (add a façade method "
                    "or re-export the value type there)"
                )


def test_cogs_never_reach_into_engine_internals():
    """The guard above checks imports; this one the calls that need no import: a store or a runtime
    reached through an object the cog was handed."""
    for path in python_files("cogs"):
        text = path.read_text()
        for reach in (".store.", "node.chain(", "services.node", "services.beacon", ".mempool", "._node", "._beacon"):
            assert reach not in text, f"{path.relative_to(ROOT)} reaches past the façade: {reach!r}"


def test_chain_never_imports_discord():
    for path in python_files("chain"):
        assert not any(n.split(".")[0] == "discord" for n in imports_of(path)), path


# The storage modules: the only places SQL is written (the engine's tables, and the bot's own).
STORAGE_PACKAGE = ROOT / "chain" / "adapters" / "storage"
BOT_STORAGE = ROOT / "bot" / "storage.py"


def is_storage_module(path: Path) -> bool:
    return path.parent == STORAGE_PACKAGE or path == BOT_STORAGE


def chain_layer_of(path: Path) -> str:
    """The layer a module of chain/ belongs to: its folder, or the vocabulary/front door at the top."""
    parts = path.relative_to(ROOT / "chain").parts
    if len(parts) == 1:
        return "front door" if path.stem in CHAIN_FRONT_DOOR else "vocabulary"
    return parts[0]


def chain_layer_of_module(name: str) -> str:
    parts = name.split(".")[1:]
    if len(parts) <= 1:
        return "front door" if parts and parts[0] in CHAIN_FRONT_DOOR else "vocabulary"
    return parts[0]


def test_chain_folders_are_the_layers_and_nothing_sits_outside_them():
    folders = {p.name for p in (ROOT / "chain").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(CHAIN_LAYERS) - {"vocabulary", "front door"}, folders
    for path in python_files("chain"):
        assert chain_layer_of(path) in CHAIN_LAYERS, path


def test_chain_layers_import_only_their_own_folder_and_the_layers_before_it():
    checked = 0
    for path in python_files("chain"):
        layer = chain_layer_of(path)
        for name in imports_of(path):
            if name.split(".")[0] != "chain" or name == "chain":
                continue
            target = chain_layer_of_module(name)
            checked += 1
            assert target == layer or CHAIN_LAYERS[target] < CHAIN_LAYERS[layer], (
                f"{path.relative_to(ROOT)} ({layer}) imports {name} ({target}): chain/'s layers import downward only"
            )
    assert checked > 100


def test_consensus_modules_are_pure():
    checked = 0
    for path in python_files("chain"):
        if chain_layer_of(path) in ("adapters", "front door"):
            continue
        checked += 1
        impure = {n for n in imports_of(path) if n.split(".")[0] in IMPURE_MODULES}
        assert not impure, f"{path.relative_to(ROOT)} imports {impure}: clock, randomness and I/O are arguments"
    assert checked >= 10


def test_sql_lives_only_in_the_storage_modules():
    for package in LAYERS:
        for path in python_files(package):
            if is_storage_module(path):
                continue
            text = path.read_text()
            for keyword in ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE"):
                assert keyword not in text or path.parent.name == "tests", f"{keyword!r} in {path}"


def test_statements_run_only_in_the_storage_modules():
    """``execute``/``executemany`` of SQL is a storage module's job; the rest call repositories."""
    for package in LAYERS:
        for path in python_files(package):
            if is_storage_module(path):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"execute", "executemany", "executescript"}
                ):
                    raise AssertionError(
                        f"{path.relative_to(ROOT)}:{node.lineno} runs SQL outside chain/adapters/storage"
                    )


def test_storage_modules_exist_and_hold_the_migrations():
    assert (STORAGE_PACKAGE / "migrations.py").exists() and BOT_STORAGE.exists()
    migrations = [p for p in python_files("chain") + python_files("bot") if "\nMIGRATIONS:" in p.read_text()]
    assert migrations == [STORAGE_PACKAGE / "migrations.py"], migrations


def test_no_print_and_no_bare_except():
    for package in LAYERS:
        for path in python_files(package):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ExceptHandler):
                    assert node.type is not None, f"bare except in {path}"
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                    raise AssertionError(f"print() in {path}; use logging")


def test_each_layer_opens_with_a_docstring_that_says_what_it_may_import():
    """Issue 10: each layer's folder says what lives there and what it may import."""
    import ast

    chain_folders = ("chain/pow", "chain/ledger", "chain/pos", "chain/consensus", "chain/adapters")
    for package in ("bot", "cogs", "chain", *chain_folders, "chain/adapters/storage", "sandbox"):
        source = (ROOT / package / "__init__.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source))
        assert doc, f"{package}/__init__.py has no docstring"
        if package in ("bot", "cogs", "chain", *chain_folders):
            assert "May import" in doc, f"{package}/__init__.py does not say what it may import"


# Issue 10: the engine's words name no Discord command; the cogs add those (cogs/refusals.py).
# The commands are read from the cogs, so a new command is guarded without touching this list.
COMMAND_NAME = re.compile(r'group_name="([a-z_]+)"|@app_commands\.command\(name="([a-z_]+)"')


def discord_command_names() -> set[str]:
    names: set[str] = set()
    for path in python_files("cogs"):
        for group, command in COMMAND_NAME.findall(path.read_text()):
            names.add(group or command)
    return names


def discord_phrases(text: str, commands: set[str]) -> list[str]:
    """The slash-command mentions in ``text``: anything in backticks that starts with ``/``, and
    ``/name`` for a command or group the cogs declare (not inside a path like ``data/chain``)."""
    found = re.findall(r"`/[^`]*`?", text)
    found += [m.group(0) for m in re.finditer(r"(?<![\w/.`-])/([a-z_]+)\b", text) if m.group(1) in commands]
    return found


def docstring_nodes(tree: ast.Module) -> set[int]:
    """The docstrings of a module, its classes and functions. They are left out of the guard on
    purpose: they orient a reader of the engine ("``/stake withdraw``: an active validator asks to
    leave") and never reach a member, a log or the command line."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def engine_strings(source: str) -> list[tuple[int, str]]:
    """Every string constant of a chain/ module (f-string parts included) but its docstrings."""
    tree = ast.parse(source)
    skip = docstring_nodes(tree)
    return [
        (node.lineno, node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def test_the_guard_finds_a_discord_phrase_in_an_engine_string():
    commands = discord_command_names()
    assert {"stake", "playground", "wallet", "mine", "chain", "help"} <= commands
    planted = (
        'def f():\n    """``/stake withdraw``: fine in a docstring."""\n'
        '    raise E(f"no {x}; `/stake deposit` makes one")\n'
    )
    assert [phrase for _, s in engine_strings(planted) for phrase in discord_phrases(s, commands)] == [
        "`/stake deposit`"
    ]
    assert discord_phrases("an admin's /playground reset refills it", commands) == ["/playground"]
    assert discord_phrases("consensus-playground/chain/v1 in data/chain.sqlite3", commands) == []


def test_engine_strings_name_no_discord_command():
    commands = discord_command_names()
    found = [
        f"{path.relative_to(ROOT)}:{line}: {phrase}"
        for path in python_files("chain")
        for line, text in engine_strings(path.read_text())
        for phrase in discord_phrases(text, commands)
    ]
    assert not found, "Discord wording in the engine (cogs/refusals.py adds it):\n" + "\n".join(found)


# Public function names of chain/ that two modules define on purpose, each with its reason. Empty:
# every name means one thing (consensus-specs' sense where it has one).
SHARED_PUBLIC_FUNCTION_NAMES: dict[str, str] = {}


def test_each_public_function_name_of_chain_is_defined_once():
    """Issue 10: a module-level public function name defined in two modules of chain/ means two
    things (``compute_epoch_at_slot(slot, slots_per_epoch)`` and ``(state, slot)``), and which one a
    reader gets depends on an import line."""
    homes: dict[str, list[str]] = {}
    for path in python_files("chain"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                homes.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    shared = {
        name: paths for name, paths in homes.items() if len(paths) > 1 and name not in SHARED_PUBLIC_FUNCTION_NAMES
    }
    assert not shared, f"public function names defined in more than one module of chain/: {shared}"
    stale = set(SHARED_PUBLIC_FUNCTION_NAMES) - {name for name, paths in homes.items() if len(paths) > 1}
    assert not stale, f"listed as shared but defined once (drop them from the list): {stale}"
