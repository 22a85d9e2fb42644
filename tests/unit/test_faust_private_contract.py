"""The private parts of Faust, mode and aiokafka the worker relies on still exist on the
installed versions, and are used only through ``streams/faust_private.py``.

Driven by ``streams.faust_private.CONTRACT``: a dependency upgrade that renames or
reshapes one of them fails here, naming the package version, instead of in production.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest

from streams.faust_private import CONTRACT, RETIRED_APP_ATTRIBUTES, PrivateUse

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = "streams/faust_private.py"
SCANNED = ("streams", "sinks", "funnel")
FOREIGN = ("faust", "mode", "aiokafka")

# Private uses outside the adapter in files this change left to their owners. Each says
# what replaces it; an entry that no longer matches anything fails
# test_pending_entries_are_still_needed, so it is deleted together with the fix.
PENDING: dict[tuple[str, str], str] = {}

MISSING = object()


# --- the declared uses still hold on the installed versions ------------------------------


def _owner(use: PrivateUse) -> type:
    module, _, name = use.owner.partition(":")
    owner: type = getattr(importlib.import_module(module), name)
    return owner


def _problem(use: PrivateUse, what: str) -> str:
    version = importlib.metadata.version(use.package)
    module = use.owner.partition(":")[0]
    return (
        f"{use.package} {version}: {use.where} ({module}) {what}; {ADAPTER} relies on it"
        f" ({use.how}) for: {use.why}"
    )


def _sample_app() -> faust.App:
    # Faust's own driver (kafka://), never started: constructing needs no broker.
    return faust.App(
        "faust-private-contract",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
    )


def _aiokafka_consumer(app: faust.App) -> aiokafka.AIOKafkaConsumer:
    async def build() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")  # never started

    return asyncio.run(build())


# An instance of each owner whose instance attributes the contract declares.
SAMPLES: dict[str, Callable[[faust.App], Any]] = {
    "aiokafka.consumer.consumer:AIOKafkaConsumer": _aiokafka_consumer,
    "faust.transport.drivers.aiokafka:Consumer": lambda app: app.consumer,
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread": lambda app: app.consumer._thread,
    "faust.transport.drivers.aiokafka:Producer": lambda app: app.producer,
    "faust.stores.memory:Store": lambda app: (
        app.Table("contract-probe", key_type=bytes, value_type=bytes).data
    ),
}


@pytest.fixture(scope="module")
def sample_app() -> faust.App:
    return _sample_app()


def _annotation(owner: type, name: str) -> Any:
    for klass in owner.__mro__:
        annotations = inspect.get_annotations(klass)
        if name in annotations:
            return annotations[name]
    return MISSING


def _annotation_allows(annotation: Any, holds: type) -> bool:
    if isinstance(annotation, str):
        return holds.__name__ in annotation
    return annotation is holds or holds in typing.get_args(annotation)


@pytest.mark.parametrize("use", CONTRACT, ids=[u.where for u in CONTRACT])
def test_private_use_still_exists(use: PrivateUse, sample_app: faust.App) -> None:
    owner = _owner(use)
    static = inspect.getattr_static(owner, use.name, MISSING)
    if use.kind == "attribute":
        assert not inspect.isfunction(static), _problem(use, "is now a method")
        assert use.owner in SAMPLES, f"no sample instance of {use.owner}: add one to SAMPLES"
        sample = SAMPLES[use.owner](sample_app)
        assert isinstance(sample, owner), f"the sample of {use.owner} is a {type(sample)}"
        value = getattr(sample, use.name, MISSING)
        assert value is not MISSING, _problem(use, "is gone")
        if use.holds is None:
            return
        if value is None:
            annotation = _annotation(owner, use.name)
            assert _annotation_allows(annotation, use.holds), _problem(
                use, f"is None and no longer annotated to hold {use.holds.__name__}"
            )
        else:
            assert isinstance(value, use.holds), _problem(
                use, f"now holds {type(value).__name__}, not {use.holds.__name__}"
            )
        return
    assert static is not MISSING, _problem(use, "is gone")
    assert inspect.isfunction(static), _problem(
        use, f"is no longer a method (now {type(static).__name__})"
    )
    is_coroutine = inspect.iscoroutinefunction(static)
    assert is_coroutine == (use.kind == "coroutine method"), _problem(
        use, "is now a coroutine method" if is_coroutine else "is no longer a coroutine method"
    )
    params = tuple(inspect.signature(static).parameters)[1:]
    assert params == use.params, _problem(
        use, f"now takes ({', '.join(params)}), not ({', '.join(use.params)})"
    )


def test_the_contract_declares_each_use_once() -> None:
    keys = [(u.owner, u.name) for u in CONTRACT]
    assert len(keys) == len(set(keys)), "a private use is declared twice in CONTRACT"
    for use in CONTRACT:
        assert use.kind in ("attribute", "method", "coroutine method"), use
        assert use.package in ("faust-streaming", "mode-streaming", "aiokafka"), use
        assert use.kind == "attribute" or use.holds is None, use
        assert use.kind != "attribute" or not use.params, use


# --- used only through the adapter --------------------------------------------------------


def _project_files() -> Iterator[tuple[str, Path]]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative != ADAPTER and "/." not in relative:
                yield relative, path


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")


def declared_name_hits(
    names: typing.Iterable[str], files: typing.Iterable[tuple[str, Path]]
) -> list[tuple[str, int, str]]:
    """(file, line, name) for each line mentioning a name, in code, strings or comments."""
    patterns = {name: _name_pattern(name) for name in names}
    hits = []
    for relative, path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            hits.extend(
                (relative, number, name)
                for name, pattern in patterns.items()
                if pattern.search(line)
            )
    return hits


def _declared_names() -> list[str]:
    return sorted({u.name for u in CONTRACT} | set(RETIRED_APP_ATTRIBUTES))


def test_declared_private_names_appear_only_in_the_adapter() -> None:
    hits = declared_name_hits(_declared_names(), _project_files())
    outside = [f"{f}:{n}: {name}" for f, n, name in hits if (f, name) not in PENDING]
    assert not outside, (
        f"private Faust/mode/aiokafka names (or retired app attributes) used outside"
        f" {ADAPTER}; call its named functions instead:\n  " + "\n  ".join(outside)
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_names(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, attributes it assigns, class fields."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if _is_private(n)}


@cache
def foreign_private_names() -> frozenset[str]:
    """Private names that Faust, mode and aiokafka define anywhere in their sources."""
    names: set[str] = set()
    for package in FOREIGN:
        # Not importlib.util.find_spec: faust replaces its module by a lazy one.
        for location in importlib.import_module(package).__path__:
            for path in Path(location).rglob("*.py"):
                names |= _defined_names(ast.parse(path.read_text(), str(path)))
    return frozenset(names)


def _foreign_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to Faust, mode or aiokafka modules or their members."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if a.name.split(".")[0] in FOREIGN
            )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FOREIGN:
            aliases.update(a.asname or a.name for a in node.names)
    return aliases


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _own_names(tree: ast.Module, aliases: set[str]) -> set[str]:
    """Private names the module defines itself: module-level functions, classes and
    variables, and the methods, fields and ``self`` attributes of its classes that do not
    derive from a Faust, mode or aiokafka class."""
    own: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(statement.name)
        elif isinstance(statement, ast.Assign):
            own.update(t.id for t in statement.targets if isinstance(t, ast.Name))
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            own.add(statement.target.id)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef) or _foreign_based(node, aliases):
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                own.add(child.name)
            elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
                own.add(child.target.id)
            elif isinstance(child, ast.Assign):
                own.update(t.id for t in child.targets if isinstance(t, ast.Name))
            elif (
                isinstance(child, ast.Attribute)
                and isinstance(child.ctx, ast.Store)
                and isinstance(child.value, ast.Name)
                and child.value.id == "self"
            ):
                own.add(child.attr)
    return {n for n in own if _is_private(n)}


def _foreign_based(node: ast.ClassDef, aliases: set[str]) -> bool:
    return any(_root_name(base) in aliases for base in node.bases)


def _named_private(node: ast.AST) -> str | None:
    """The private name ``node`` reaches: ``x._name`` or ``getattr(x, "_name")`` etc."""
    if isinstance(node, ast.Attribute) and _is_private(node.attr):
        return node.attr
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _is_private(node.args[1].value)
    ):
        return node.args[1].value
    return None


def private_uses(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, name) for each use of a private name of Faust, mode or aiokafka.

    A use: ``x._name`` or ``getattr(x, "_name")`` (and the like) where ``_name`` is one
    Faust, mode or aiokafka define and this module does not define itself, and
    ``def _name`` in a class derived from theirs that overrides one of their names.
    """
    tree = ast.parse(source, filename)
    foreign = foreign_private_names()
    aliases = _foreign_aliases(tree)
    own = _own_names(tree, aliases)
    uses: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and _foreign_based(node, aliases):
            uses.update(
                (child.lineno, child.name)
                for child in ast.walk(node)
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                and _is_private(child.name)
                and child.name in foreign
            )
        name = _named_private(node)
        if name is not None and name in foreign and name not in own:
            uses.add((node.lineno, name))
    return sorted(uses)


def test_no_private_name_of_faust_mode_or_aiokafka_outside_the_adapter() -> None:
    found = [
        f"{relative}:{line}: {name}"
        for relative, path in _project_files()
        for line, name in private_uses(path.read_text(), relative)
        if (relative, name) not in PENDING
    ]
    assert not found, (
        "these look like private names of faust/mode/aiokafka (they define them): reach"
        f" them through a named function in {ADAPTER} and declare them in its CONTRACT:\n  "
        + "\n  ".join(found)
    )


def test_every_private_use_in_the_adapter_is_declared() -> None:
    declared = {u.name for u in CONTRACT}
    source = (ROOT / ADAPTER).read_text()
    used = {name for _, name in private_uses(source, ADAPTER)}
    assert not used - declared, (
        f"{ADAPTER} uses private names not declared in CONTRACT: {sorted(used - declared)}"
    )
    assert not declared - used, (
        f"CONTRACT declares private names {ADAPTER} no longer uses: {sorted(declared - used)}"
    )


def test_pending_entries_are_still_needed() -> None:
    files = [(r, p) for r, p in _project_files() if r in {f for f, _ in PENDING}]
    named = {(f, name) for f, _, name in declared_name_hits(_declared_names(), files)}
    generic = {(r, name) for r, p in files for _, name in private_uses(p.read_text(), r)}
    stale = [f"{f}: {name}" for f, name in PENDING if (f, name) not in named | generic]
    assert not stale, "fixed meanwhile, delete from PENDING: " + ", ".join(stale)


# --- the scans can fail ---------------------------------------------------------------------


def test_the_scans_flag_private_uses(tmp_path: Path) -> None:
    source = """
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class Mine(faust_aiokafka.Consumer):
    def _new_offset(self, tp):
        return super()._new_offset(tp)


class Plain:
    def __init__(self, app):
        self._app = app

    def committed(self, tp):
        return getattr(self._app.consumer, "_committed_offset", {}).get(tp)

    def producer(self):
        return self._app.producer._producer

    def hooks(self):
        return self._app.funnel_batch_topics
"""
    assert private_uses(source, "probe.py") == [
        (7, "_new_offset"),
        (8, "_new_offset"),
        (16, "_committed_offset"),
        (19, "_producer"),
    ]
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    hits = declared_name_hits(_declared_names(), [("probe.py", probe)])
    assert {(n, name) for _, n, name in hits} == {
        (7, "_new_offset"),
        (8, "_new_offset"),
        (16, "_committed_offset"),
        (19, "_producer"),
        (22, "funnel_batch_topics"),
    }
