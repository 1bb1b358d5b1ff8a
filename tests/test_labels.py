"""Labels are a type: no label is spelled as a string literal outside ``breastlab.core.labels``.

The check reads the source with :mod:`ast` (``src/`` and ``bench/``; tests may spell
labels, they are the contract's other side). A string constant equal to a label is a
*label literal* unless it is one of these, which are other vocabularies that happen to
share a word with a label:

* a docstring;
* a DICOM value: a Code String (upper case, digits, space, ``_``; at most 16 characters,
  so ``DWI_low`` or ``DCE_pre`` never is one) that is an element of a list/tuple/set of
  such strings holding at least one non-label (``ImageType=["DERIVED", "PRIMARY", "ADC"]``),
  the value given to a DICOM keyword (``ScanOptions="OTHER"``, ``{"ImageType": ...}``), an
  ImageType token handed to the rule table's ``_itype``, or a comparison with an ImageType
  or AcquisitionContrast value (``"LOCALIZER" in s.image_type``);
* an entry of :data:`ALLOWED` below (file, string, why).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from pydicom.datadict import keyword_dict

from breastlab.core.labels import LABELS, Label

ROOT = Path(__file__).resolve().parents[1]
LABEL_MODULE = ROOT / "src" / "breastlab" / "core" / "labels.py"
VALUES = {str(x) for x in LABELS}

#: other vocabularies the AST rules above cannot tell apart: (path from the root, string) -> why
ALLOWED: dict[tuple[str, str], str] = {
    ("src/breastlab/convert/pipeline.py", "ADC"): "dcm2niix names its computed ADC output '..._ADC'",
}

_DICOM_VALUE_HINTS = ("image_type", "itype", "AcquisitionContrast")
_CODE_STRING = re.compile(r"[A-Z0-9 _]{0,16}")


def test_label_type_has_exactly_todays_strings() -> None:
    assert [str(x) for x in Label] == [
        "T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "T1", "DCE_pre", "DCE_early", "DCE_delayed",
        "SUB", "MIP", "LOCALIZER", "DERIVED", "OTHER", "UNKNOWN",
    ]
    assert all(isinstance(x, str) and x == str(x) for x in Label)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _dicom_values(tree: ast.AST) -> set[int]:
    """ids of string constants that are DICOM values (see the module docstring)."""
    out: set[int] = set()

    def strings(node: ast.AST) -> list[ast.Constant]:
        return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and _CODE_STRING.fullmatch(n.value)]

    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            consts = [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if (len(consts) == len(node.elts) and all(_CODE_STRING.fullmatch(c.value) for c in consts)
                    and any(c.value not in VALUES for c in consts)):
                out.update(id(c) for c in consts)
        elif isinstance(node, ast.keyword) and node.arg in keyword_dict:
            out.update(id(c) for c in strings(node.value))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value in keyword_dict:
                    out.update(id(c) for c in strings(v))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_itype":
            out.update(id(c) for a in node.args for c in strings(a))
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(h in ast.unparse(s) for s in sides for h in _DICOM_VALUE_HINTS):
                out.update(id(c) for s in sides for c in strings(s))
    return out


def label_literals(text: str, rel: str = "") -> list[tuple[int, str]]:
    """(line, string) of every label literal in one source text (``rel``: its path, for ALLOWED)."""
    tree = ast.parse(text)
    skip = _docstrings(tree) | _dicom_values(tree)
    return [
        (n.lineno, n.value) for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in VALUES
        and id(n) not in skip and (rel, n.value) not in ALLOWED
    ]


def _sources() -> list[Path]:
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    return [f for f in files if f != LABEL_MODULE]


def test_no_label_string_literal_outside_the_label_type() -> None:
    found = []
    for f in _sources():
        rel = f.relative_to(ROOT).as_posix()
        found += [f"{rel}:{line}: {text!r}" for line, text in label_literals(f.read_text(encoding="utf-8"), rel)]
    assert not found, "label literals (use breastlab.core.labels.Label):\n" + "\n".join(found)


def test_the_check_tells_a_label_from_a_dicom_value() -> None:
    text = (
        '"""A docstring: T1."""\n'
        'IMAGE_TYPE = ["DERIVED", "PRIMARY", "ADC"]\n'
        'ds = dict(ScanOptions="OTHER")\n'
        'if "LOCALIZER" in s.image_type or label == "DCE_early":\n'
        '    names = ("T2WI", "T2WI_FS")\n'
        'sets = f(("DWI_low", 50.0, "DWI_b50"), ("ADC", "dADC"), ImageType=("DWI_low", "X"))\n'
    )
    assert sorted(label_literals(text)) == [(4, "DCE_early"), (5, "T2WI"), (5, "T2WI_FS"),
                                            (6, "ADC"), (6, "DWI_low"), (6, "DWI_low")]


def test_allow_list_entries_are_still_needed() -> None:
    for (rel, text), why in ALLOWED.items():
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        skip = _docstrings(tree) | _dicom_values(tree)
        assert any(isinstance(n, ast.Constant) and n.value == text and id(n) not in skip for n in ast.walk(tree)), \
            f"{rel}: {text!r} ({why}) is no longer there: remove it from ALLOWED"
