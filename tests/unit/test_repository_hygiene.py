"""The repository cites only what its readers can open: spec clauses and public sources.

Comments and docs name the DSMR or IEC/EN clause they follow, or the public project and file of
a test vector, never notes that live outside the repository, and no file carries a path of the
machine it was written on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED_DIRS = ("twin", "hardware", "tests", "bench", "docs", "systemd", "deploy", "scripts")
CHECKED_FILES = ("README.md", "pyproject.toml", "Makefile")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}

# Built from parts, so this file does not match itself.
OUTSIDE_NOTES = re.compile(
    "|".join(
        (
            "research" + "/",  # the research briefs
            r"\bresearch\b[^\n]{0,30}?\b(?:p1|p2|p3|pi|style)\." + "md",
            r"\bresearch (?:brief |note )?" + "§",
            r"\b(?:p1|p2|p3|pi|style)\." + r"md\b",  # a brief by its file name
            r"\bARCHITECTURE" + r"\b",  # the outside design notes (docs/architecture.md is ours)
            re.escape(".." + "/shared"),
            re.escape("/" + "work/"),  # an absolute path of the machine
        )
    )
)


def checked_files() -> list[Path]:
    files = [ROOT / name for name in CHECKED_FILES if (ROOT / name).is_file()]
    for folder in CHECKED_DIRS:
        files.extend(
            path
            for path in sorted((ROOT / folder).rglob("*"))
            if path.is_file() and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts)
        )
    return files


def text_of(path: Path) -> str | None:
    """The file as text, or None for a binary file (an image, a compiled file)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def offending_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if OUTSIDE_NOTES.search(line)]


@pytest.mark.parametrize(
    "line",
    [
        "see re" + "search/p2" + ".md §10",
        "(re" + "search p3" + ".md defect M)",
        "1 k works for one reader [re" + "search §1.2]",
        "Sources: re" + "search brief p1" + ".md §2 and §7.",
        "(ARCHI" + "TECTURE.md rule 6)",
        "(ports, in ARCHI" + "TECTURE terms)",
        "facts in .." + "/shared/notes",
        "open /" + "work/wt/cite/README.md",
        "gurux fails on 0 (p3" + ".md §2.4 R)",
    ],
)
def test_notes_outside_the_repository_are_found(line: str) -> None:
    assert offending_lines(f"x = 1\n# {line}\n") == [f"# {line}"]


@pytest.mark.parametrize(
    "line",
    [
        "see docs/architecture.md, the layers",
        "P2 §5.2 builds the IV; EN 13757-2 answer window",
        "the research that led here is in the commit message",
        "libmbus test/test-frames/LGB_G350.hex",
        "a working copy under /srv/dsmr-twin",
    ],
)
def test_spec_clauses_and_in_repository_docs_pass(line: str) -> None:
    assert offending_lines(line) == []


def test_no_file_cites_notes_outside_the_repository() -> None:
    files = checked_files()
    assert len(files) > 100  # the walk found the tree
    found = {
        str(path.relative_to(ROOT)): lines
        for path in files
        if (text := text_of(path)) is not None and (lines := offending_lines(text))
    }
    assert found == {}
