"""Projection views (LCC, RMLO, ...): parsing from DICOM tags and free text, and view sets.

A :class:`View` is a laterality (``L``/``R``) plus a projection (``CC``, ``MLO``,
``ML``, ``LM``, ``LMO``, ``XCCL``, ``XCCM``, ``FB``, ``SIO``, ``ISO``). Its ``name``
(``"LCC"``, ``"RMLO"``) is the column name used in ``cases.csv``.

Text parsing works on *tokens*: the text is split at every non-alphanumeric
character, at letter/digit changes and at lower→upper case changes, so
``"L_MLO_2"`` → ``L MLO 2`` and ``"RightMLO"`` → ``RIGHT MLO``. Patterns only match
whole tokens, so ``CCLIP``, ``ACCESSION`` or ``COMLOG`` never yield a view.

:func:`view_from_record` applies the precedence DICOM tags (ImageLaterality /
Laterality, ViewPosition, ViewCodeSequence) → SeriesDescription → ProtocolName →
PatientID → file path. A tag value always wins over a name; a name only fills in
what the tags leave empty (e.g. laterality tag ``L`` + SeriesDescription
``"MLO 10 min"`` → ``LMLO``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from breastlab.dicom.records import InstanceRecord

LATERALITIES = ("L", "R")
#: Projections known to the parser (ACR MQCM abbreviations, DICOM CID 4014).
PROJECTIONS = ("CC", "MLO", "ML", "LM", "LMO", "XCCL", "XCCM", "FB", "SIO", "ISO")

#: DICOM CID 4014 "View for Mammography" (SNOMED CT) codes, used by the phantom.
VIEW_CODES: dict[str, tuple[str, str]] = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
    "ML": ("399260004", "medio-lateral"),
    "LM": ("399352003", "latero-medial"),
    "LMO": ("399099002", "latero-medial oblique"),
    "XCCL": ("399192008", "cranio-caudal exaggerated laterally"),
    "XCCM": ("399101009", "cranio-caudal exaggerated medially"),
    "FB": ("399196006", "caudo-cranial"),
    "SIO": ("399188001", "superolateral to inferomedial oblique"),
    "ISO": ("441555000", "inferomedial to superolateral oblique"),
}


@dataclass(frozen=True, order=True)
class View:
    """One projection view of one breast, e.g. ``View("L", "CC")`` (name ``"LCC"``)."""

    laterality: str  # "L" or "R"
    projection: str  # one of PROJECTIONS

    def __post_init__(self) -> None:
        if self.laterality not in LATERALITIES:
            raise ValueError(f"laterality must be L or R, not {self.laterality!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r} (known: {', '.join(PROJECTIONS)})")

    @property
    def name(self) -> str:
        return f"{self.laterality}{self.projection}"

    def contralateral(self) -> View:
        """The same projection of the other breast (LCC → RCC)."""
        return View("R" if self.laterality == "L" else "L", self.projection)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_name(cls, name: str) -> View:
        """Strict inverse of :attr:`name` (``"LMLO"`` → ``View("L", "MLO")``)."""
        text = name.strip().upper()
        if len(text) >= 3 and text[0] in LATERALITIES and text[1:] in PROJECTIONS:
            return cls(text[0], text[1:])
        raise ValueError(f"not a view name: {name!r} (expected e.g. LCC, RMLO)")


# --------------------------------------------------------------------------- tokens

_LAT_WORDS = {"L": "L", "LT": "L", "LEFT": "L", "R": "R", "RT": "R", "RIGHT": "R"}

# Projection phrases on normalised (upper-case, single-space separated) text; longest first.
_PROJ_PHRASES: tuple[tuple[str, str], ...] = (
    (r"CRANIO ?CAUDAL EXAGGERATED LATERALLY", "XCCL"),
    (r"CRANIO ?CAUDAL EXAGGERATED MEDIALLY", "XCCM"),
    (r"EXAGGERATED CRANIO ?CAUDAL(?: LATERAL)?", "XCCL"),
    (r"SUPERO ?LATERAL TO INFERO ?MEDIAL OBLIQUE", "SIO"),
    (r"INFERO ?MEDIAL TO SUPERO ?LATERAL OBLIQUE", "ISO"),
    (r"MEDI(?:O|AL)? ?LATERAL OBLIQUE", "MLO"),
    (r"MEDI(?:O|AL)? ?LATERAL ?OBLIQUE", "MLO"),
    (r"LATERO ?MEDIAL OBLIQUE", "LMO"),
    (r"CRANIO ?CAUDAL", "CC"),
    (r"CAUDO ?CRANIAL", "FB"),
    (r"MEDI(?:O|AL)? ?LATERAL", "ML"),
    (r"LATERO ?MEDIAL", "LM"),
    (r"OBLIQUE|OBL", "MLO"),
    (r"XCCL", "XCCL"),
    (r"XCCM", "XCCM"),
    (r"MLO", "MLO"),
    (r"LMO", "LMO"),
    (r"SIO", "SIO"),
    (r"CC", "CC"),
    (r"ML", "ML"),
    (r"LM", "LM"),
    (r"FB", "FB"),
)
_B = r"(?<!\S)"  # token start
_E = r"(?!\S)"  # token end
_PROJ_RE = re.compile(
    "|".join(f"{_B}(?P<p{i}>{pat}){_E}" for i, (pat, _) in enumerate(_PROJ_PHRASES))
)
_LAT_RE = re.compile(_B + r"(?P<lat>LEFT|RIGHT|LT|RT|L|R)" + _E)
# One token holding laterality and projection: LCC, RMLO, LEFTCC, RTMLO; and CCL, MLOR.
_COMPACT = "MLO|XCCL|XCCM|LMO|SIO|CC|ML|LM|FB"
_COMPOUND_RE = re.compile(
    _B + r"(?P<lat>LEFT|RIGHT|LT|RT|L|R)(?P<proj>" + _COMPACT + ")" + _E
    + "|" + _B + r"(?P<proj2>CC|MLO)(?P<lat2>L|R)" + _E
)

_FILE_SUFFIXES = {
    ".dcm", ".dicom", ".dic", ".ima", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff",
    ".npy", ".npz", ".nii", ".gz", ".raw", ".img",
}


def normalise(text: str) -> str:
    """Upper-case tokens separated by single spaces (see module docstring)."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    s = re.sub(r"([A-Za-z])(?=\d)|(\d)(?=[A-Za-z])", lambda m: (m.group(1) or m.group(2)) + " ", s)
    return " ".join(re.sub(r"[^A-Za-z0-9]+", " ", s).upper().split())


def _proj_code(match: re.Match) -> str:
    for i, (_, code) in enumerate(_PROJ_PHRASES):
        if match.group(f"p{i}") is not None:
            return code
    raise AssertionError("unreachable")  # pragma: no cover


def _parts_of_text(text: str) -> tuple[set[str], set[str]]:
    """All lateralities and projections found as whole tokens in one piece of text."""
    norm = normalise(text)
    lats: set[str] = set()
    projs: set[str] = set()
    for m in _COMPOUND_RE.finditer(norm):
        lats.add(_LAT_WORDS[m.group("lat") or m.group("lat2")])
        projs.add(m.group("proj") or m.group("proj2"))
    rest = _COMPOUND_RE.sub(" ", norm)
    for m in _PROJ_RE.finditer(rest):
        projs.add(_proj_code(m))
    rest = _PROJ_RE.sub(" ", rest)
    for m in _LAT_RE.finditer(rest):
        lats.add(_LAT_WORDS[m.group("lat")])
    return lats, projs


_MAX_PATH_DEPTH = 3  # file name + two parent folders


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or PurePath(text).suffix.lower() in _FILE_SUFFIXES


def _path_components(text: str) -> list[str]:
    """File stem first, then parent folders innermost-first."""
    parts = [p for p in re.split(r"[\\/]+", text) if p]
    if not parts:
        return []
    stem = parts[-1]
    while PurePath(stem).suffix.lower() in _FILE_SUFFIXES:
        stem = stem[: -len(PurePath(stem).suffix)]
    return [stem, *reversed(parts[:-1])]


def parse_view_parts(text: str | None) -> tuple[str | None, str | None]:
    """``(laterality, projection)`` found in ``text``; either is ``None`` when absent or ambiguous.

    File paths are read component by component (file name first, then its folders,
    innermost first): the first component naming a full view wins; otherwise the
    laterality and projection may come from different components
    (``left/CC.png``). Folders further up are ignored.
    """
    if not text or not str(text).strip():
        return None, None
    text = str(text)
    if not _looks_like_path(text):
        lats, projs = _parts_of_text(text)
        return (lats.pop() if len(lats) == 1 else None), (projs.pop() if len(projs) == 1 else None)
    lat: str | None = None
    proj: str | None = None
    for component in _path_components(text)[:_MAX_PATH_DEPTH]:
        lats, projs = _parts_of_text(component)
        if len(lats) == 1 and len(projs) == 1 and lat is None and proj is None:
            return lats.pop(), projs.pop()
        if lat is None and len(lats) == 1:
            lat = next(iter(lats))
        if proj is None and len(projs) == 1:
            proj = next(iter(projs))
        if lat is not None and proj is not None:
            return lat, proj
    return lat, proj


def parse_view(text: str | None) -> View | None:
    """The view named in ``text`` (``"L-CC"``, ``"RMLO"``, ``"Right Mediolateral Oblique"``,
    ``".../patient7/R_CC.dcm"``), or ``None`` if it names none or is ambiguous."""
    lat, proj = parse_view_parts(text)
    if lat is None or proj is None:
        return None
    return View(lat, proj)


def strip_view_text(text: str) -> str:
    """``text`` with view words removed (``"P_00001_LEFT_CC"`` → ``"P_00001"``), for grouping
    when a data set writes the view into the PatientID."""
    norm = normalise(text)
    norm = _COMPOUND_RE.sub(" ", norm)
    norm = _PROJ_RE.sub(" ", norm)
    norm = _LAT_RE.sub(" ", norm)
    return " ".join(norm.split())


# --------------------------------------------------------------------------- records

#: Name sources tried after the tags, in order (InstanceRecord field names, plus "path").
NAME_SOURCES = ("series_description", "protocol_name", "patient_id", "path")


def _tag_laterality(value: str | None) -> str | None:
    if not value:
        return None
    v = value.strip().upper()
    if v in ("L", "R"):
        return v
    return _LAT_WORDS.get(v)


def _tag_projection(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    v = value.strip().upper()
    if v in PROJECTIONS:
        return v
    _, proj = parse_view_parts(v)  # e.g. "MEDIO-LATERAL OBLIQUE", "cranio-caudal"
    return proj


def view_from_record(record: InstanceRecord) -> tuple[View | None, str]:
    """The view of one image and where it came from.

    Returns ``(view, source)``; ``source`` is ``"tags"`` when the DICOM tags alone
    give the view, ``"tags+series_description"`` etc. when a name filled in what the
    tags lacked, the name source alone (``"protocol_name"``, ``"path"``, ...) when the
    tags are empty, and ``"none"`` (with ``view=None``) when nothing names a view.
    """
    tag_lat = _tag_laterality(record.laterality)
    tag_proj = _tag_projection(record.view_position) or _tag_projection(record.view_code)
    if tag_lat and tag_proj:
        return View(tag_lat, tag_proj), "tags"
    for source in NAME_SOURCES:
        lat, proj = parse_view_parts(getattr(record, source, None))
        lat = tag_lat or lat
        proj = tag_proj or proj
        if lat and proj:
            prefix = "tags+" if (tag_lat or tag_proj) else ""
            return View(lat, proj), prefix + source
    return None, "none"


# --------------------------------------------------------------------------- view sets

@dataclass(frozen=True)
class ViewSet:
    """The views (= columns of ``cases.csv``) that make a complete case.

    ``any_image=True`` (preset ``single``) means a case is one image of any view,
    e.g. ultrasound: its one column is named ``views[0]`` (``"image"``).
    """

    name: str
    views: tuple[str, ...]
    any_image: bool = False

    def __post_init__(self) -> None:
        if not self.views:
            raise ValueError("a view set needs at least one view")
        if len(set(self.views)) != len(self.views):
            raise ValueError(f"duplicate view in view set: {', '.join(self.views)}")
        if self.any_image and len(self.views) != 1:
            raise ValueError("an any-image view set has exactly one column")
        if not self.any_image:
            for v in self.views:
                View.from_name(v)

    def slot(self, view: View | None) -> str | None:
        """The column that an image of ``view`` fills, or ``None`` if it is not in the set."""
        if self.any_image:
            return self.views[0]
        if view is not None and view.name in self.views:
            return view.name
        return None

    def __len__(self) -> int:
        return len(self.views)


FOUR_VIEWS = ("LCC", "RCC", "LMLO", "RMLO")
PRESETS: dict[str, ViewSet] = {
    "bsgi4": ViewSet("bsgi4", FOUR_VIEWS),
    "mammo4": ViewSet("mammo4", FOUR_VIEWS),
    "four": ViewSet("four", FOUR_VIEWS),
    "cc2": ViewSet("cc2", ("LCC", "RCC")),
    "mlo2": ViewSet("mlo2", ("LMLO", "RMLO")),
    "single": ViewSet("single", ("image",), any_image=True),
}
DEFAULT_VIEW_SET = PRESETS["bsgi4"]


def resolve_view_set(spec: str | Sequence[str] | ViewSet | None = None) -> ViewSet:
    """A :class:`ViewSet` from a preset name (``bsgi4``, ``mammo4``, ``cc2``, ``mlo2``,
    ``single``), a comma list (``"LCC,RCC"``) or a sequence of view names. Free-form
    names are accepted (``"L-CC"``) and normalised to ``LCC``."""
    if spec is None:
        return DEFAULT_VIEW_SET
    if isinstance(spec, ViewSet):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in PRESETS:
            return PRESETS[key]
        items: Iterable[str] = [s for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    names = []
    for item in items:
        view = parse_view(item)
        if view is None:
            raise ValueError(
                f"not a view: {item!r}; use names like LCC,RCC,LMLO,RMLO or a preset "
                f"({', '.join(sorted(PRESETS))})"
            )
        names.append(view.name)
    names_t = tuple(names)
    for preset in PRESETS.values():
        if preset.views == names_t:
            return preset
    return ViewSet("custom", names_t)
