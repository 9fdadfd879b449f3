"""The shape of the code: no import cycles, sans-IO protocol cores, and P3's layers as folders.

The import graph is read from the source with `ast` (no module is imported): every `import`
and `from ... import` in `twin` and `hardware`, absolute or relative, at module level or inside
a function (a lazy import still ties two modules together), and the modules a module loads by
name with `importlib` (a string naming one of ours). For cycles, imports under
`if TYPE_CHECKING:` count too: mypy follows them, and a module that needs another's types to be
checked is tied to it as much as one that calls it. For the sans-IO rule they do not count
(they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("twin", "hardware")
# I/O, clocks and threads: what a sans-IO protocol core never imports.
NOT_SANS_IO = {"asyncio", "socket", "serial", "time", "select", "selectors", "threading"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, typing: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement; those under `if TYPE_CHECKING:` only when `typing`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node) and not typing:
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), typing)
        else:
            yield from _import_nodes(node, typing)


def _loaded_by_name(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Our modules named in string constants of a module that uses importlib."""
    if not any(
        isinstance(n, ast.Import) and any(a.name == "importlib" for a in n.names)
        for n in ast.walk(tree)
    ):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
            yield node.value, node.lineno


def _owner(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported(module: str, path: Path, typing: bool = False) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import in the module; names outside ours included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    yield from _loaded_by_name(tree)
    for node in _import_nodes(tree, typing):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            # `from package import module` imports the module; otherwise the name's owner.
            submodule = f"{base}.{alias.name}"
            yield (submodule if submodule in MODULES else base), node.lineno


def _graph(typing: bool = True) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_owner(name) for name, _ in _imported(module, path, typing)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest import path from `start` back to itself, or None (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    return None


def test_relative_imports_resolve(tmp_path: Path) -> None:
    source = tmp_path / "wiring.py"  # read as twin/p3/wiring.py
    source.write_text("from . import keys\nfrom ..store import Store\nfrom .objects.base import f")
    assert [name for name, _ in _imported("twin.p3.wiring", source)] == [
        "twin.p3.keys",
        "twin.store",
        "twin.p3.objects.base",
    ]


def test_the_graph_is_read() -> None:
    graph = _graph()
    # Known edges, at module and function level.
    assert "twin.p3.service" in graph["twin.p3.wiring"]
    assert "twin.p1.service" in graph["twin.app"]  # a lazy import inside _p1_services
    assert "twin.store" in graph["twin.app"]
    assert "twin.p2.cli" in graph["twin.cli"]  # loaded by name (importlib)
    # `Twin` is imported for annotations only, `Service` also lazily in a function.
    runtime = _graph(typing=False)["twin.display.wiring"]
    assert "twin.parts" in graph["twin.display.wiring"]
    assert "twin.parts" not in runtime
    assert "twin.supervisor" in runtime
    # A graph with a planted cycle is caught, with the path.
    planted = {**graph, "twin.store": graph["twin.store"] | {"twin.app"}}
    assert _cycle_through(planted, "twin.app") is not None


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: dict[frozenset[str], str] = {}
    for module in sorted(graph):
        cycle = _cycle_through(graph, module)
        if cycle is not None:
            cycles.setdefault(frozenset(cycle), " -> ".join(cycle))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles.values()))


def _sans_io_modules() -> list[str]:
    # P3: the wire and the server whole, and the push logic of the GPRS side.
    cores = [m for m in MODULES if m.startswith(("twin.p3.dlms", "twin.p3.server"))]
    cores += [f"twin.p3.gprs.{n}" for n in ("push", "push_time", "push_triggers", "push_wakeup")]
    cores += ["twin.p1.telegram", "twin.p1.capture"]
    # The P2 codecs and state machines are the package's own modules (its asyncio side is aio/).
    cores += [m for m in MODULES if m.startswith("twin.p2.") and m.count(".") == 2]
    cores += ["twin.p2"]
    return sorted(cores)


def test_the_sans_io_cores_exist() -> None:
    cores = _sans_io_modules()
    assert {"twin.p3.dlms.wrapper", "twin.p3.dlms.acse", "twin.p3.dlms.security"} <= set(cores)
    assert {"twin.p3.server.connection", "twin.p3.server.association"} <= set(cores)
    assert "twin.p2.frames" in cores
    assert {"twin.p1.telegram", "twin.p1.capture"} <= set(cores)


def _io_imports(module: str) -> list[str]:
    used = {name.split(".")[0] for name, _ in _imported(module, MODULES[module])}
    return sorted(used & NOT_SANS_IO)


def _is_sans_io(module: str) -> bool:
    return not _io_imports(module)


@pytest.mark.parametrize("module", _sans_io_modules())
def test_sans_io_cores_import_no_io(module: str) -> None:
    assert _io_imports(module) == []


# The sans-IO layers of twin.p3, lowest first: a module imports only from its own layer or
# below. The object model sits on them; the asyncio service, the keys in the store, the GPRS
# controller and the wiring sit on top.
P3_LAYERS = ("dlms", "server")


def _members(package: str) -> list[str]:
    return [m for m in MODULES if m == package or m.startswith(package + ".")]


def _p3_imports(module: str) -> Iterator[tuple[str, int]]:
    for name, line in _imported(module, MODULES[module], typing=True):
        target = _owner(name)
        if target is not None and target.startswith("twin.p3"):
            yield target, line


@pytest.mark.parametrize("layer", P3_LAYERS)
def test_p3_layers_import_nothing_above_them(layer: str) -> None:
    allowed = tuple(f"twin.p3.{below}." for below in P3_LAYERS[: P3_LAYERS.index(layer) + 1])
    members = _members(f"twin.p3.{layer}")
    assert len(members) > 3
    upward = [
        f"{module}:{line} imports {target}"
        for module in members
        for target, line in _p3_imports(module)
        if not target.startswith(allowed)
    ]
    assert upward == []


def test_the_object_model_loads_no_asyncio_side_of_p3() -> None:
    """The COSEM model uses the sans-IO layers and sans-IO helpers (the push timing it
    validates class 40 writes with), never the services that run on asyncio."""
    members = _members("twin.p3.objects")
    assert len(members) > 10
    reached = [
        f"{module}:{line} imports {target}"
        for module in members
        for target, line in _p3_imports(module)
        if not target.startswith(("twin.p3.dlms.", "twin.p3.server.", "twin.p3.objects"))
        and not _is_sans_io(target)
    ]
    assert reached == []


@pytest.mark.parametrize("package", ["twin.display", "twin.p2", "twin.p1", "twin.meter"])
def test_the_other_ports_reach_nothing_of_p3(package: str) -> None:
    """What P3 offers them (the modem's network state, the display readout lists) comes through
    the `Twin` and the neutral `twin.ports`, never from a P3 module or a registry in one."""
    graph = _graph()
    members = _members(package)
    assert members
    reached = sorted(
        f"{m} imports {t}" for m in members for t in graph[m] if t.startswith("twin.p3")
    )
    assert reached == []


# A twin with P2 and the display on and P3 off, built in a fresh interpreter: which modules
# did it load? (The display takes the modem and readout lists from the `Twin`, not from P3.)
BUILD_WITHOUT_P3 = """
import sys, tempfile
from pathlib import Path
from twin.app import build
from twin.config import config_from_mapping
config = config_from_mapping({"p3": {"endpoint": "none"}, "display": {"device": "simulated"}})
with tempfile.TemporaryDirectory() as state:
    twin = build(config, Path(state))
    names = sorted(s.name for s in twin.services)
    twin.store.close()
print(" ".join(names))
print(" ".join(m for m in sys.modules if m.startswith(("twin", "gurux"))))
"""


def test_a_twin_without_p3_loads_nothing_of_p3() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BUILD_WITHOUT_P3],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    services, loaded = (line.split() for line in result.stdout.splitlines()[-2:])
    assert {"p2", "display"} <= set(services)  # the ports that are on were wired
    assert "p3" not in services
    assert "twin.p2.aio.wiring" in loaded  # the listing is real
    assert sorted(m for m in loaded if m.startswith(("twin.p3", "gurux"))) == []


# ---------------------------------------------------------------------- one of each


def _top_level_names(module: str) -> set[str]:
    """Functions, classes and constants a module defines itself (not imports)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


@pytest.mark.parametrize(
    "name",
    [
        "encode_length",  # the A-XDR and BER definite length (X.690 §8.1.3; Green Book §9.5)
        "NOT_SPECIFIED",  # the all-wildcard date-time (Blue Book §4.1.6.1)
        "DLMS_VERSION",  # 6 (Green Book §9.5 InitiateResponse; the association LN object)
    ],
)
def test_defined_once(name: str) -> None:
    defined = sorted(m for m in MODULES if m.startswith("twin") and name in _top_level_names(m))
    assert len(defined) == 1, defined


def _int_constants(value: int) -> list[str]:
    found = []
    for module in MODULES:
        if module.startswith("twin"):
            tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
            found += [
                f"{module}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and type(node.value) is int
                and node.value == value
            ]
    return found


@pytest.mark.parametrize("mode", [0o600, 0o750], ids=["database", "state-dir"])
def test_each_file_mode_is_written_once(mode: int) -> None:
    assert len(_int_constants(mode)) == 1, _int_constants(mode)


def _only_reexports(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return bool(body) and all(
        isinstance(node, ast.Import | ast.ImportFrom)
        or (
            isinstance(node, ast.Assign)
            and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__all__"]
        )
        for node in body
    )


def test_no_module_only_reexports_another() -> None:
    """Package `__init__` files may gather a package's names; a plain module that only
    re-exports another is a second name for the same thing: import the real one."""
    shims = sorted(m for m, p in MODULES.items() if p.name != "__init__.py" and _only_reexports(p))
    assert shims == []


def test_importing_the_p3_package_loads_only_its_sans_io_core() -> None:
    """`twin.p3` exports the core's names; the object model, the asyncio service and the GPRS
    side load only when a module of theirs is imported."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys, twin.p3; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    p3 = [m for m in result.stdout.split() if m.startswith("twin.p3.")]
    assert "twin.p3.server.connection" in p3
    assert sorted(m for m in p3 if not m.startswith(("twin.p3.dlms", "twin.p3.server"))) == []
