"""The CSV cell policy of every table breastlab writes (series.csv, instances.csv, skipped.csv, ...).

Safe by default (OWASP "CSV injection"): in a text cell

* control characters are removed (C0 and C1 controls, tab, CR and LF included, and the
  bidirectional overrides U+202A-U+202E, U+2066-U+2069), so header text cannot carry
  escape sequences to a terminal or split a row in a naive reader;
* a cell that a spreadsheet would evaluate (it starts with ``=``, ``+``, ``-`` or ``@``
  once cleaned, or started with a tab or CR) gets a leading ``'``, which makes it inert
  text; a plain number such as ``-1.5`` is kept as it is.

Numbers, ``None`` and surrogate escapes (file-name bytes that are not UTF-8) are never
changed. ``BREASTLAB_CSV_VERBATIM=1`` (or ``breastlab --csv-verbatim ...``) writes every
cell verbatim, as the files were written before this policy (see docs/sorting.md).
"""
from __future__ import annotations

import os
import re
from typing import Any

ENV_VERBATIM = "BREASTLAB_CSV_VERBATIM"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA = frozenset("=+-@")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def verbatim() -> bool:
    """Whether cells are written verbatim (``BREASTLAB_CSV_VERBATIM`` set to 1/true/yes)."""
    return os.environ.get(ENV_VERBATIM, "").strip().lower() in ("1", "true", "yes")


def safe_cell(value: Any) -> Any:
    """``value`` made safe for a CSV cell under the default policy (see the module doc)."""
    if not isinstance(value, str) or not value:
        return value
    first = value[0]
    if value.isascii() and value.isprintable() and first not in _FORMULA:
        return value  # the common case, without a regular expression
    text = _CONTROL.sub("", value)
    if text and (text[0] in _FORMULA or first in "\t\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def row_cells(row: dict[str, Any], *, safe: bool | None = None) -> dict[str, Any]:
    """A row as ``csv.DictWriter`` should get it: ``None`` as ``""``, text cells by the policy."""
    if safe is None:
        safe = not verbatim()
    if safe:
        return {k: ("" if v is None else safe_cell(v)) for k, v in row.items()}
    return {k: ("" if v is None else v) for k, v in row.items()}
