"""The shape a DICOM JSON answer (PS3.18 F.2) must have, checked before anything reads it.

A server may send valid JSON of any shape. Everything breastlab reads from QIDO-RS and
WADO-RS answers passes through here first, so the readers (``metadata.py``) only ever see
lists of objects keyed by eight hex digits, with ``vr`` a two-letter code, ``Value`` a list
of scalars (objects for PN, items for SQ), ``InlineBinary``/``BulkDataURI`` strings and
sequence nesting at most :data:`MAX_DEPTH` deep. Anything else is one line: a
:class:`~breastlab.pacs.errors.PacsError` for the answer as a whole, or a reason for one
instance (which is then skipped). JSON nested too deeply for the parser itself
(``RecursionError``) is refused the same way by ``dicomweb.http_errors``.
"""
from __future__ import annotations

import re
from typing import Any

from breastlab.pacs.errors import PacsError

#: sequence nesting accepted (real headers nest 3-4 deep)
MAX_DEPTH = 16
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_VR = re.compile(r"[A-Z]{2}")
_UID = re.compile(r"[0-9][0-9.]{0,63}")


def answer_items(answer: Any, what: str, url: str) -> list[Any]:
    """The list of objects an answer must be (a lone object counts as one); ``PacsError`` otherwise."""
    if isinstance(answer, dict):
        return [answer]
    if not isinstance(answer, list):
        raise PacsError(f"{what}: {url} sent {type(answer).__name__} where a JSON array of DICOM data sets belongs")
    return answer


def problem(item: Any, depth: int = 0) -> str | None:
    """Why ``item`` is not a DICOM JSON data set, or ``None`` when it is one."""
    if not isinstance(item, dict):
        return f"a data set is a JSON object, not {type(item).__name__}"
    if depth > MAX_DEPTH:
        return f"sequences nested deeper than {MAX_DEPTH}"
    for key, elem in item.items():
        if not _TAG.fullmatch(key):
            return f"attribute key {key[:20]!r} is not 8 hex digits"
        if not isinstance(elem, dict):
            return f"attribute {key} is {type(elem).__name__}, not an object"
        vr = elem.get("vr", "UN")
        if not isinstance(vr, str) or not _VR.fullmatch(vr):
            return f"attribute {key} has vr {str(vr)[:8]!r}"
        for name in ("InlineBinary", "BulkDataURI"):
            if name in elem and not isinstance(elem[name], str):
                return f"attribute {key}: {name} is not a string"
        if "Value" not in elem:
            continue
        values = elem["Value"]
        if not isinstance(values, list):
            return f"attribute {key}: Value is {type(values).__name__}, not an array"
        for v in values:
            if vr == "SQ":
                why = problem(v, depth + 1)
                if why:
                    return f"{key} item: {why}"
            elif vr == "PN" and isinstance(v, dict):
                if not all(isinstance(x, str) for x in v.values()):
                    return f"attribute {key}: a person name group is not a string"
            elif v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
                return f"attribute {key}: a value is {type(v).__name__}"
    return None


def study_uid(hit: Any) -> str | None:
    """The StudyInstanceUID of a QIDO-RS hit, when it is one (a well-formed UID), else ``None``."""
    if not isinstance(hit, dict):
        return None
    elem = hit.get("0020000D")
    values = elem.get("Value") if isinstance(elem, dict) else None
    uid = values[0] if isinstance(values, list) and values else None
    return uid if isinstance(uid, str) and _UID.fullmatch(uid) else None
