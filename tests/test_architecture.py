"""docs/architecture.md stays true: which folders of ``src/breastlab`` may import which.

The rule table ("Folders: what each owns and what it may import") and its known
exceptions are read from the document; every import statement of the package
(top-level or inside a function, absolute or relative) is read with :mod:`ast`.

Run as a script to print the folder import structure of a source tree::

    python tests/test_architecture.py [SRC_DIR]     # default: src/breastlab of this checkout
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "breastlab"
DOC = ROOT / "docs" / "architecture.md"


# --------------------------------------------------------------------------- the source

def imports(src: Path = PACKAGE) -> list[tuple[str, str, int]]:
    """(importing file relative to ``src``, imported module, line) for every breastlab import."""
    out = []
    for f in sorted(src.rglob("*.py")):
        rel = f.relative_to(src)
        parts = ["breastlab", *rel.with_suffix("").parts]
        package = parts[:-1]  # the package a relative import starts from
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                    # "from . import x": x may be a module
                    names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
                else:
                    names = [node.module or ""]
            else:
                continue
            out += [(rel.as_posix(), n, node.lineno) for n in names if n.startswith("breastlab.")]
    return out


def module_path(module: str, src: Path = PACKAGE) -> str:
    """``breastlab.mri.rules`` -> ``mri/rules.py`` (a package -> its folder, ``mri/``)."""
    rel = module.split(".")[1:]
    for k in range(len(rel), 0, -1):
        if (src.joinpath(*rel[:k]).with_suffix(".py")).is_file():
            return "/".join(rel[:k]) + ".py"
        if src.joinpath(*rel[:k]).is_dir():
            return "/".join(rel[:k]) + "/"
    return "/".join(rel)


# --------------------------------------------------------------------------- the document

def rules(doc: Path = DOC) -> dict[str, set[str] | None]:
    """folder (``mri/``) -> folders it may import (``None``: any), from the rule table."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Folders", 1)[1].split("\n## ", 1)[0]
    table = section.split("Known exceptions", 1)[0]
    out: dict[str, set[str] | None] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[\w/]+/`", cells[0]):
            allowed = cells[2]
            out[cells[0].strip("`")] = None if allowed == "any" else {
                a.strip("`") + "/" for a in re.findall(r"`[\w/]+`", allowed)}
    return out


def exceptions(doc: Path = DOC) -> set[tuple[str, str]]:
    """(file, file or folder) pairs of the known-exceptions table."""
    text = doc.read_text(encoding="utf-8")
    table = text.split("Known exceptions", 1)[1].split("\n\n", 2)[1]
    return {(a, b) for a, b in re.findall(r"^\| `([\w/.]+)` → `([\w/.]+)` \|", table, flags=re.M)}


def unit(path: str, folders: set[str]) -> str:
    """The rule-table folder a file belongs to: the longest row that holds it."""
    best = ""
    for f in folders:
        if path.startswith(f) and len(f) > len(best):
            best = f
    return best


# --------------------------------------------------------------------------- the tests

def violations(src: Path = PACKAGE, doc: Path = DOC) -> list[str]:
    table = rules(doc)
    folders = set(table)
    allowed_exceptions = exceptions(doc)
    out = []
    for path, module, line in imports(src):
        target = module_path(module, src)
        a, b = unit(path, folders), unit(target, folders)
        if not a or not b or a == b or table[a] is None or b in table[a] or b == "core/":
            continue
        if (path, target) in allowed_exceptions or any(
                path == x and (target == y or target.startswith(y)) for x, y in allowed_exceptions):
            continue
        out.append(f"{path}:{line} imports {module} ({a} may import {', '.join(sorted(table[a])) or 'core only'})")
    return out


def test_every_folder_has_a_rule_and_every_rule_a_folder() -> None:
    table = rules()
    assert "core/" in table and "cli/" in table, "the rule table was not found in docs/architecture.md"
    present = {p.relative_to(PACKAGE).as_posix() + "/" for p in PACKAGE.iterdir()
               if p.is_dir() and any(p.glob("*.py"))}
    assert present - set(table) == set(), "folders without a row in docs/architecture.md"
    missing = {f for f in table if not (PACKAGE / f).is_dir()}
    assert missing == set(), "rows of docs/architecture.md for folders that are gone"
    for folder, allowed in table.items():
        assert allowed is None or allowed <= set(table), f"{folder} may import an unknown folder: {allowed}"


def test_imports_follow_the_architecture() -> None:
    found = violations()
    assert not found, "imports that docs/architecture.md forbids:\n" + "\n".join(found)


def test_known_exceptions_name_real_files() -> None:
    for a, b in exceptions():
        assert (PACKAGE / a).is_file() and (PACKAGE / b).exists(), f"{a} -> {b}: no such file"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    src = tmp_path / "breastlab"
    for folder, body in {"core": "", "dicom": "from breastlab.mri import rules\n", "mri": "", "cli": ""}.items():
        (src / folder).mkdir(parents=True)
        (src / folder / "x.py").write_text(body)
    (src / "mri" / "rules.py").write_text("def f():\n    from ..dicom import x\n")
    found = violations(src)
    assert [v.split(" ")[0] for v in found] == ["dicom/x.py:1"]
    (src / "dicom" / "x.py").write_text("")
    assert violations(src) == []


# --------------------------------------------------------------------------- the table

def folder_table(src: Path = PACKAGE) -> dict[str, set[str]]:
    """top-level folder -> top-level folders it imports."""
    def top(p: str) -> str:
        return p.split("/", 1)[0] + "/"

    out: dict[str, set[str]] = defaultdict(set)
    for path, module, _ in imports(src):
        a, b = top(path), top(module_path(module, src))
        if a != b and "/" in path:
            out[a].add(b)
    return out


def file_cycles(src: Path = PACKAGE) -> list[list[str]]:
    """Files that import each other in a loop (strongly connected groups of two or more)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path, module, _ in imports(src):
        target = module_path(module, src)
        if target.endswith(".py") and target != path:
            graph[path].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_no_file_imports_itself_through_others() -> None:
    assert file_cycles() == []


if __name__ == "__main__":
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    for folder, targets in sorted(folder_table(tree).items()):
        print(f"{folder:14s} -> {', '.join(sorted(t.rstrip('/') for t in targets))}")
    for group in file_cycles(tree):
        print("cycle: " + " <-> ".join(group))


# --------------------------------------------------------------------------- file size
MAX_LINES = 600
#: files over the limit, each with the issue that splits it (none today)
OVERSIZED: dict[str, str] = {}


def test_no_file_over_600_lines() -> None:
    """One concern per file: none over 600 lines (split at the seams, as pydicom's
    ``pixels/decoders/`` and HeuDiConv's ``heuristics/`` do)."""
    over = {}
    for f in sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.pyx")]):
        rel = f.relative_to(PACKAGE).as_posix()
        n = len(f.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in OVERSIZED:
            over[rel] = n
    assert not over, f"files over {MAX_LINES} lines: {over}"
    for rel in OVERSIZED:
        assert (PACKAGE / rel).is_file(), f"{rel} is gone: drop it from OVERSIZED"
