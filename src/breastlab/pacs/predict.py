"""``breastlab predict ... --pacs URL``: four-view predictions written back to the PACS as DICOM.

Per study of the predicted cases: a Comprehensive SR with the probability of malignancy of each
case, the predicted class and the operating threshold (with the model's SHA-256), referencing
the four view images; plus the Grad-CAM overlays (``OUT/heatmaps/*.png``) as one Secondary
Capture series. Both are marked as research output (see :mod:`breastlab.pacs.sr`). The view
images must be DICOM (their headers give the study to write into). What was stored is listed
in ``OUT/pacs_writeback.json``.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from breastlab.pacs.errors import PacsError


def _case_rows(input_path: Path, views: list[str]) -> dict[str, dict[str, Any]]:
    """case_id -> {view: absolute path} for the predicted input (a cases.csv or a folder)."""
    if input_path.is_file():
        from breastlab.multiview.dataset import as_rows

        rows = as_rows(input_path)
    else:
        from breastlab.multiview.cases import assemble_cases

        rows = assemble_cases([input_path], view_set=views, missing="drop", duplicates="drop", labels="auto").rows()
    out = {}
    for row in rows:
        base = Path(row.get("_base_dir") or ".")
        out[str(row["case_id"])] = {v: str(base / row[v]) for v in views if row.get(v)}
    return out


def write_predictions_to_pacs(out_dir: str | os.PathLike, input_path: str | os.PathLike, result: dict[str, Any],
                              url: str, *, model_file: str | os.PathLike, timeout: float = 60.0,
                              calling_aet: str | None = None, overlays: bool = True) -> dict[str, Any]:
    """Build the prediction SR (and overlay SC series) per study and store them on ``url``."""
    import hashlib

    import numpy as np
    import pydicom
    from PIL import Image

    from breastlab.core import atomic
    from breastlab.pacs import writeback
    from breastlab.pacs.sort import open_pacs
    from breastlab.pacs.sr import PREDICT_SERIES_NUMBER, _quiet, overlay_secondary_captures, prediction_sr

    out = Path(out_dir)
    if len(result.get("class_names", [])) != 2:
        raise PacsError("--pacs writes a probability of malignancy: binary models only")
    from breastlab.core.artefacts import read_predictions

    predictions = read_predictions(out / "predictions.csv", result.get("class_names")).rows
    if not predictions:
        raise PacsError("no case was predicted: nothing to write to the PACS")
    cases = _case_rows(Path(input_path), list(result["views"]))
    by_study: dict[str, dict[str, Any]] = defaultdict(lambda: {"cases": [], "refs": {}, "header": None,
                                                                "overlays": []})
    for pred in predictions:
        views = cases.get(pred["case_id"], {})
        if not views:
            raise PacsError(f"case {pred['case_id']}: its view files are not known (input changed?)")
        refs = []
        study_uid = None
        for path in views.values():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception as exc:  # noqa: BLE001 - reported in one line
                raise PacsError(f"--pacs needs DICOM view images; {Path(path).name} is not ({type(exc).__name__})"
                                ) from None
            study_uid = str(ds.StudyInstanceUID)
            group = by_study[study_uid]
            group["header"] = group["header"] or ds
            group["refs"][str(ds.SOPInstanceUID)] = (study_uid, str(ds.SeriesInstanceUID), str(ds.SOPClassUID),
                                                     str(ds.SOPInstanceUID))
            refs.append((str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
        by_study[study_uid]["cases"].append({"case_id": pred["case_id"], "prob": float(pred["prob"]),
                                             "predicted": pred["predicted"], "refs": refs})
        heatmap = pred.get("heatmap")
        if overlays and heatmap and (out / heatmap).is_file():
            with Image.open(out / heatmap) as im:
                by_study[study_uid]["overlays"].append(np.asarray(im.convert("RGB")))
    sha = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()
    pacs = open_pacs(url, timeout=timeout, calling_aet=calling_aet)
    summary = []
    for study_uid, group in by_study.items():
        result_digest = writeback.digest({
            "cases": [[c["case_id"], round(c["prob"], 6), c["predicted"], sorted(c["refs"])] for c in group["cases"]],
            "threshold": round(float(result["threshold"]), 6), "threshold_source": str(result["threshold_source"]),
            "model_sha256": sha, "overlays": [hashlib.sha256(np.ascontiguousarray(o).tobytes()).hexdigest()
                                              for o in group["overlays"]]})

        def build(place: writeback.Placement, group: dict[str, Any] = group) -> list[Any]:
            with _quiet():
                sr = prediction_sr(group["cases"], group["header"], list(group["refs"].values()),
                                   threshold=float(result["threshold"]),
                                   threshold_source=str(result["threshold_source"]),
                                   model_name=Path(model_file).name, model_sha256=sha, place=place)
                scs = (overlay_secondary_captures(group["overlays"], group["header"], place=place)
                       if group["overlays"] else [])
            return [sr, *scs]

        written = writeback.write_once(pacs, study_uid, PREDICT_SERIES_NUMBER, result_digest, build,
                                       what="prediction SR")
        n_overlays = len(group["overlays"])
        overlay_series = None
        if n_overlays:  # the overlays' UIDs derive from the SR's: the same for an unchanged result
            overlay_series = writeback.derived_uid(written["sop_instance_uid"], "overlays")
        summary.append({"study_uid": study_uid, "action": written["action"], "replaces": written["replaces"],
                        "sr_sop_instance_uid": written["sop_instance_uid"], "sr_series_uid": written["series_uid"],
                        "n_cases": len(group["cases"]), "overlay_series_uid": overlay_series,
                        "n_overlays": n_overlays, "n_stored": len(written["instances"])})
    info = {"pacs": pacs.address.url, "threshold": result["threshold"], "studies": summary}
    atomic.write_json(out / "pacs_writeback.json", info)
    return info
