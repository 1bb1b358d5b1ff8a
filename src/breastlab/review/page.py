"""``review.html``: one self-contained page to check and correct a sort, image set by image set.

Built from a sort's output folder (``series.json`` and ``instances.csv``): per study,
every image set as a row with its thumbnail (:mod:`breastlab.review.thumbs`), label,
confidence, evidence and its source, b-value or DCE timing, image count and geometry.
Everything (data, thumbnails, script, style) is inlined: the page works offline, from a
file or any static server, and loads nothing. It carries no patient name or ID and no
file path: studies are the sort's pseudonyms (``study-<hash>``), sets their set ids.

The page's script (``assets/review.js``) sorts UNKNOWN and low-confidence sets first,
filters by label, confidence, vendor and review state, takes corrections from the
keyboard, and exports them as a truth table (:mod:`breastlab.review.truth`).
"""
from __future__ import annotations

import csv
import html
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from breastlab.core.labels import LABELS, Label
from breastlab.review import thumbs as _thumbs
from breastlab.review.truth import encode_images

REVIEW_NAME = "review.html"
#: sets below this confidence are "low confidence" on the page (and sorted first)
LOW_CONFIDENCE = 0.8
#: one key per label (shown on the page's buttons); j, k, c, n, x, ? are the page's own keys
LABEL_KEYS: dict[Label, str] = {
    Label.T2WI: "t", Label.T2WI_FS: "f", Label.DWI_LOW: "w", Label.DWI_HIGH: "h", Label.ADC: "a",
    Label.T1: "1", Label.DCE_PRE: "p", Label.DCE_EARLY: "e", Label.DCE_DELAYED: "d", Label.SUB: "s",
    Label.MIP: "m", Label.LOCALIZER: "l", Label.DERIVED: "r", Label.OTHER: "o", Label.UNKNOWN: "u",
}
#: series.json columns the page shows (never patient_id, patient_name, first_path, study_uid)
_FIELDS = {
    "series_number": "series_number", "image_set": "image_set", "series_description": "description",
    "manufacturer": "vendor", "n_images": "n_images", "label": "label", "confidence": "confidence",
    "evidence": "evidence", "evidence_source": "source", "rule": "rule", "b_value": "b_value",
    "b_values": "b_values", "dce_phase": "dce_phase", "dce_seconds": "dce_seconds",
    "n_timepoints": "n_timepoints", "dce_timing": "dce_timing", "acquisition_key": "acq", "split": "split",
    "modality": "modality", "image_type": "image_type", "repetition_time": "tr", "echo_time": "te",
    "inversion_time": "ti", "flip_angle": "flip", "fat_suppression": "fs", "series_uid": "series_uid",
    "study": "study", "set_id": "id", "image_label": "image_label", "image_confidence": "image_confidence",
}


@dataclass
class ReviewPage:
    """What was written: the page, its size, and how many sets have no thumbnail."""

    path: Path
    n_sets: int
    n_studies: int
    n_bytes: int
    n_without_image: int


def read_sort(folder: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """series.json rows and instances.csv rows of a sort's output folder."""
    folder = Path(folder)
    try:
        series = json.loads((folder / "series.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} holds no series.json: not the --out folder of breastlab sort") from None
    except ValueError as exc:
        raise ValueError(f"{folder / 'series.json'}: not valid JSON ({exc})") from None
    if not isinstance(series, list):
        raise ValueError(f"{folder / 'series.json'}: not a list of image sets")
    instances: list[dict[str, str]] = []
    if (folder / "instances.csv").is_file():
        with open(folder / "instances.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            keep = ("path", "frame_index", "set_id", "sop_instance_uid", "instance_number", "b_value")
            instances = [{k: row.get(k) or "" for k in keep} for row in csv.DictReader(fh)]
    return series, instances


def set_images(instances: Sequence[Mapping[str, str]]) -> dict[str, tuple[tuple[str, int | None], ...]]:
    """set id → (SOP Instance UID, frame) pairs, in instances.csv order."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for r in instances:
        frame = r.get("frame_index")
        out.setdefault(r.get("set_id", ""), []).append(
            (r.get("sop_instance_uid", ""), int(float(frame)) if frame not in (None, "") else None))
    return {k: tuple(v) for k, v in out.items()}


def _uid_cells(images: Sequence[tuple[str, int | None]]) -> dict[str, str]:
    """The truth-table cells of a set, UIDs prefix-compressed for the page (the script rebuilds them)."""
    uids, frames = encode_images(tuple(images))
    parts = uids.split()
    prefix = os.path.commonprefix(parts) if len(parts) > 1 else ""
    prefix = prefix[: prefix.rfind(".") + 1] if "." in prefix else ""
    return {"uid_prefix": prefix, "uids": " ".join(p[len(prefix):] for p in parts), "frames": frames}


def page_data(series: Sequence[Mapping[str, Any]], instances: Sequence[Mapping[str, str]],
              thumbs: Mapping[str, _thumbs.Thumb], *, truth: Mapping[str, str] | None = None,
              agreement: Mapping[str, Any] | None = None, title: str = "breastlab sort review") -> dict[str, Any]:
    """The JSON the page's script renders (no patient data: see ``_FIELDS``)."""
    images = set_images(instances)
    sets, studies = [], {}
    for row in series:
        if not row.get("set_id"):
            continue  # header-less PNG/NIfTI rows of an image model: nothing to review here
        s = {short: row.get(col) for col, short in _FIELDS.items() if row.get(col) not in (None, "")}
        s |= _uid_cells(images.get(str(row["set_id"]), ()))
        th = thumbs.get(str(row["set_id"]))
        if th is not None:
            s["img"] = [list(x) for x in th.images]
            s["geo"] = th.geometry
            if th.reason:
                s["why"] = th.reason
        if truth and str(row["set_id"]) in truth:
            s["truth"] = str(truth[str(row["set_id"])])
        sets.append(s)
        studies.setdefault(s.get("study", "study-unknown"), Counter())[s.get("vendor", "")] += 1
    return {
        "title": title,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "labels": [str(x) for x in LABELS],
        "keys": {str(k): v for k, v in LABEL_KEYS.items()},
        "unknown": str(Label.UNKNOWN),
        "low": LOW_CONFIDENCE,
        "studies": [{"study": k, "vendor": v.most_common(1)[0][0]} for k, v in studies.items()],
        "sets": sets,
        "agreement": agreement,
    }


def _asset(name: str) -> str:
    return resources.files("breastlab.review").joinpath("assets", name).read_text(encoding="utf-8")


def render_html(data: Mapping[str, Any]) -> str:
    """The page: template, style, script and data inlined (``</`` escaped inside the JSON)."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).replace("</", "<\\/")
    return (_asset("review.html")
            .replace("{{TITLE}}", html.escape(str(data.get("title", ""))))
            .replace("{{STYLE}}", _asset("review.css"))
            .replace("{{SCRIPT}}", _asset("review.js"))
            .replace("{{DATA}}", payload))


def build_review(folder: str | os.PathLike, *, dest: str | os.PathLike | None = None, workers: int | None = None,
                 truth: Mapping[str, str] | None = None, agreement: Mapping[str, Any] | None = None) -> ReviewPage:
    """Write ``review.html`` for the sort in ``folder`` (into ``dest``, default ``folder/review.html``).

    ``truth`` (set id → the truth table's label) and ``agreement`` (from
    :func:`breastlab.review.agreement.agreement`) are shown when given.
    """
    from breastlab.core import atomic

    folder = Path(folder)
    series, instances = read_sort(folder)
    by_set = _thumbs.group_instances(instances)
    plans = {str(r["set_id"]): _thumbs.plan_slices(by_set.get(str(r["set_id"]), []))
             for r in series if r.get("set_id")}
    thumbs = _thumbs.render_thumbnails(plans, workers=workers)
    data = page_data(series, instances, thumbs, truth=truth, agreement=agreement)
    text = render_html(data)
    path = Path(dest) if dest is not None else folder / REVIEW_NAME
    atomic.write_text(path, text)
    return ReviewPage(path=path, n_sets=len(data["sets"]), n_studies=len(data["studies"]),
                      n_bytes=len(text.encode("utf-8")),
                      n_without_image=sum(1 for s in data["sets"] if not s.get("img")))
