"""The case table: ``Case``, ``Problem``, ``CaseTable``, its columns, labels and pseudonyms, and
``cases.csv`` read and written (through ``core.artefacts``). Assembly is in ``multiview.cases``.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.core import artefacts, atomic
from breastlab.core.errors import UsageError
from breastlab.core.privacy import hashed_id
from breastlab.core.vocab import DuplicatePolicy, GroupBy, MissingPolicy
from breastlab.multiview.conventions import parse_birads
from breastlab.multiview.views import View, ViewSet, resolve_view_set


MISSING_POLICIES = tuple(m.value for m in MissingPolicy)
DUPLICATE_POLICIES = tuple(m.value for m in DuplicatePolicy)
GROUP_BY = tuple(m.value for m in GroupBy)
BASE_COLUMNS = ("case_id", "patient_id", "label")
#: Optional per-breast label columns of ``cases.csv`` (1 malignant, 0 not, empty unknown).
BREAST_LABEL_COLUMNS = ("label_L", "label_R")
#: Optional columns of ``cases.csv`` that are not views: the public-set convention that
#: assembled the case, and the manufacturer of its images (DICOM Manufacturer, read with the
#: headers at assembly), for the evaluation's breakdowns.
INFO_COLUMNS = ("convention", "manufacturer")
WRITTEN_INFO_COLUMNS = INFO_COLUMNS  # manufacturer: from the DICOM headers read at assembly
NON_VIEW_COLUMNS = (*BASE_COLUMNS, *BREAST_LABEL_COLUMNS, *INFO_COLUMNS)
PROBLEM_COLUMNS = ("case_id", "view", "reason", "detail", "path")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy"})
IGNORED_SUFFIXES = frozenset({
    ".csv", ".tsv", ".json", ".txt", ".md", ".html", ".htm", ".xml", ".log", ".pdf", ".py",
    ".yaml", ".yml", ".zip", ".pt", ".pth", ".nii", ".gz", ".sh", ".ini", ".cfg",
})

#: The one label vocabulary of the diagnosis side (``parse_label``; ``dataset.parse_label``
#: reads words through it).
_POSITIVE = {"1", "1.0", "m", "malignant", "malignancy", "malign", "cancer", "carcinoma",
             "positive"}
_NEGATIVE = {"0", "0.0", "b", "benign", "negative"}


class CaseAssemblyError(UsageError):
    """Cases are incomplete or ambiguous under the chosen policy; ``table`` holds the
    partial result and every problem, so callers can still write ``cases_problems.csv``."""

    def __init__(self, message: str, table: CaseTable) -> None:
        super().__init__(message)
        self.table = table


@dataclass
class Case:
    """One case: its views' file paths (``None`` = blank view) and a label (1 malignant, 0 benign)."""

    case_id: str
    patient_id: str
    label: int | None
    paths: dict[str, str | None]
    filled: dict[str, str] = field(default_factory=dict)  # view -> how a missing view was filled
    breast_labels: dict[str, int] = field(default_factory=dict)  # "L"/"R" -> 1 malignant / 0 not
    convention: str = ""  # public-set convention that assembled the case (cbis-ddsm, cmmd, vindr)
    manufacturer: str = ""

    def row(self, extra: Sequence[str] = ()) -> dict[str, Any]:
        row: dict[str, Any] = {"case_id": self.case_id, "patient_id": self.patient_id,
                               "label": "" if self.label is None else self.label}
        for col in extra:
            if col in BREAST_LABEL_COLUMNS:
                row[col] = self.breast_labels.get(col[-1], "")
            else:
                row[col] = getattr(self, col, "") or ""
        row.update({k: (v or "") for k, v in self.paths.items()})
        return row


@dataclass(frozen=True)
class Problem:
    """Something that kept a file or case out, or changed it (one row of ``cases_problems.csv``)."""

    reason: str  # missing-view, duplicate-view, unreadable, missing-file, unparseable-view, ...
    detail: str
    path: str = ""
    case_id: str = ""
    view: str = ""

    def row(self) -> dict[str, str]:
        return {"case_id": self.case_id, "view": self.view, "reason": self.reason,
                "detail": self.detail, "path": self.path}


@dataclass
class CaseTable:
    """Assembled cases plus every problem met on the way."""

    view_set: ViewSet
    cases: list[Case]
    problems: list[Problem] = field(default_factory=list)
    view_sources: Counter = field(default_factory=Counter)

    @property
    def view_names(self) -> tuple[str, ...]:
        return self.view_set.views

    @property
    def extra_columns(self) -> list[str]:
        """Per-breast label and info columns, present only when some case has them."""
        cols = []
        if any(c.breast_labels for c in self.cases):
            cols += list(BREAST_LABEL_COLUMNS)
        cols += [c for c in WRITTEN_INFO_COLUMNS if any(getattr(k, c, "") for k in self.cases)]
        return cols

    @property
    def columns(self) -> list[str]:
        return [*BASE_COLUMNS, *self.extra_columns, *self.view_names]

    def rows(self) -> list[dict[str, Any]]:
        extra = self.extra_columns
        return [c.row(extra) for c in self.cases]

    def label_counts(self) -> Counter:
        return Counter(c.label for c in self.cases)

    def problem_counts(self) -> Counter:
        return Counter(p.reason for p in self.problems)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        return write_cases(self, path)


# --------------------------------------------------------------------------- helpers

def problems_path(cases_csv: str | Path) -> Path:
    """``cases.csv`` → ``cases_problems.csv`` (same folder)."""
    p = Path(cases_csv)
    return p.with_name(f"{p.stem}_problems.csv")


def write_cases(table: CaseTable, path: str | Path) -> tuple[Path, Path]:
    """Write ``cases.csv`` and ``cases_problems.csv`` atomically; returns both paths."""
    out = artefacts.write_cases(path, table.rows(), table.columns)
    prob = atomic.write_csv(problems_path(path), (p.row() for p in table.problems), PROBLEM_COLUMNS)
    return out, prob


def pseudonym(*parts: str, prefix: str = "C", salt: str = "", length: int = 12) -> str:
    """``prefix`` + the first ``length`` hex digits of SHA-256(salt, parts).

    The prefix keeps spreadsheet tools from reading ids like ``12e456`` as numbers.
    """
    return hashed_id(salt + "".join(f"\x1f{part}" for part in parts), prefix, length)


def parse_label(value: Any, label_map: Mapping[str, Any] | None = None) -> int | str | None:
    """1 (malignant), 0 (benign), ``None`` (unknown/empty) or ``"drop"`` (excluded by the map).

    ``label_map`` keys are matched case-insensitively before the defaults
    (``malignant/m/1/cancer`` → 1, ``benign/b/0`` and ``BENIGN_WITHOUT_CALLBACK`` → 0).
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    key = text.lower()
    norm = re.sub(r"[\s\-]+", "_", key)
    if label_map:
        lowered = {str(k).strip().lower(): v for k, v in label_map.items()}
        for k in (key, norm):
            if k in lowered:
                mapped = lowered[k]
                if mapped in ("drop", "skip", "exclude"):
                    return "drop"
                if mapped in (None, "", "none", "unknown"):
                    return None
                return int(mapped)
    birads = parse_birads(text)  # "BI-RADS 4" (VinDr-Mammo breast_birads)
    if birads is not None:
        return birads
    if norm in _POSITIVE or norm.startswith("malignan"):
        return 1
    if norm in _NEGATIVE or norm.startswith("benign"):
        return 0
    return None


def parse_label_map(text: str | None) -> dict[str, Any]:
    """``"normal=0,benign=0,malignant=1,other=drop"`` → dict (for the CLI)."""
    result: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"label map entry {item!r} is not NAME=VALUE")
        k, v = (s.strip() for s in item.split("=", 1))
        v_low = v.lower()
        if v_low in ("drop", "skip", "exclude"):
            result[k] = "drop"
        elif v_low in ("", "none", "unknown"):
            result[k] = None
        else:
            parsed = parse_label(v)
            if parsed is None:
                raise ValueError(f"label map value {v!r} is not 0, 1, malignant, benign, none or drop")
            result[k] = parsed
    return result




# --------------------------------------------------------------------------- reading

def read_cases(path: str | Path) -> CaseTable:
    """Load a ``cases.csv``: every column other than ``case_id, patient_id, label`` and the
    optional ``label_L, label_R, convention, manufacturer`` is a view.

    Relative paths are resolved against the CSV's folder; empty cells are blank views
    (``None``); the label is 1, 0 or ``None``.
    """
    path = Path(path)
    rows = artefacts.read_cases(path)
    fieldnames = rows.columns
    missing_cols = [c for c in BASE_COLUMNS if c not in fieldnames]
    if missing_cols:
        raise ValueError(f"{path} is not a case table: missing column(s) {', '.join(missing_cols)}")
    views = tuple(c for c in fieldnames if c not in NON_VIEW_COLUMNS)
    if not views:
        raise ValueError(f"{path} has no view columns")
    if views == ("image",):
        vs = resolve_view_set("single")
    else:
        try:
            vs = resolve_view_set(list(views))
        except ValueError:
            vs = ViewSet("custom", views, any_image=len(views) == 1)
        if vs.views != views:  # columns named loosely (l_cc): keep the file's names
            vs = ViewSet("custom", views, any_image=False) if all(
                _is_view_name(v) for v in views) else ViewSet("custom", views, any_image=len(views) == 1)
    base = path.resolve().parent
    cases = []
    for row in rows:
        paths: dict[str, str | None] = {}
        for v in views:
            cell = (row.get(v) or "").strip()
            if not cell:
                paths[v] = None
            else:
                p = Path(cell).expanduser()
                paths[v] = str(p if p.is_absolute() else (base / p))
        label = parse_label(row.get("label"))
        breasts = {c[-1]: parse_label(row.get(c)) for c in BREAST_LABEL_COLUMNS}
        cases.append(Case(row["case_id"], row.get("patient_id") or "",
                          label if isinstance(label, int) else None, paths,
                          breast_labels={k: v for k, v in breasts.items() if isinstance(v, int)},
                          convention=row.get("convention") or "",
                          manufacturer=row.get("manufacturer") or ""))
    return CaseTable(vs, cases)


def _is_view_name(name: str) -> bool:
    try:
        View.from_name(name)
        return True
    except ValueError:
        return False
