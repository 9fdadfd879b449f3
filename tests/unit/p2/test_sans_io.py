"""twin.p2 stays sans-IO: no I/O, clock or randomness modules anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import twin.p2
from twin.p2.crypto import check_counter
from twin.p2.errors import ReplayError

FORBIDDEN = {"asyncio", "serial", "socket", "time", "random", "os", "subprocess", "secrets"}
PACKAGE = Path(twin.p2.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_forbidden_imports() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 10
    for module in modules:
        assert not _imports(module) & FORBIDDEN, module.name


def test_no_builtin_open_or_print() -> None:
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        calls = {
            node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not calls & {"open", "print", "input"}, module.name


def test_frame_counter_rule() -> None:
    assert check_counter(2, 1) == 2
    with pytest.raises(ReplayError):
        check_counter(1, 1)
    with pytest.raises(ReplayError):
        check_counter(None, 0)
