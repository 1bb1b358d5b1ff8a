"""The review step of ``breastlab sort``: truth-table agreement and ``review.html``, written into the stage.

:class:`ReviewStep` is the ``finish`` callable that :func:`breastlab.mri.sorter.sort_exam`
runs on the staging folder after series.json and instances.csv are complete and before
the output set is published: what it writes (``review.html``, ``agreement.json``, the
truth columns of ``series.json``) is part of the same consistent set (manifest included).
:func:`add_to_published` does the same for ``breastlab review OUT`` on a published set.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.core import atomic
from breastlab.review.agreement import agreement
from breastlab.review.page import REVIEW_NAME, ReviewPage, build_review, read_sort, set_images
from breastlab.review.truth import TruthMatch, TruthRow, match_truth

AGREEMENT_NAME = "agreement.json"
#: series.json columns added with a truth table
TRUTH_COLUMNS = ("truth_label", "truth_agrees")


@dataclass
class ReviewStep:
    """Agreement with ``truth`` (when given) and the review page (when ``review``), for one sort."""

    review: bool = True
    truth: list[TruthRow] | None = None
    workers: int | None = None
    annotate_series: bool = True  # add truth columns to series.json (a sort's stage, not a published set)
    page: ReviewPage | None = None
    match: TruthMatch | None = None
    agreement: dict[str, Any] | None = None
    written: list[str] = field(default_factory=list)

    def __call__(self, folder: str | os.PathLike) -> dict[str, Any]:
        """Write into ``folder`` (a sort's stage); returns what provenance.json should add."""
        folder = Path(folder)
        series, instances = read_sort(folder)
        truth_map = None
        extra: dict[str, Any] = {}
        if self.truth is not None:
            self.match = match_truth(self.truth, series, set_images(instances))
            truth_map = self.match.by_set()
            self.agreement = agreement([(t, p) for _, t, p in self.match.pairs])
            self.agreement["unmatched"] = len(self.match.unmatched)
            doc = dict(self.agreement)
            doc["unmatched_rows"] = [{"set_id": r.set_id, "series_uid": r.series_uid, "label": str(r.label),
                                      "why": why} for r, why in self.match.unmatched]
            atomic.write_json(folder / AGREEMENT_NAME, doc)
            self.written.append(AGREEMENT_NAME)
            if self.annotate_series:
                for row in series:
                    t = truth_map.get(str(row.get("set_id")))
                    row["truth_label"] = None if t is None else str(t)
                    row["truth_agrees"] = None if t is None else str(t) == str(row.get("label"))
                atomic.write_json(folder / "series.json", series)
            extra["truth"] = {"n": self.agreement["overall"]["n"], "accuracy": self.agreement["overall"]["accuracy"],
                              "ci_low": self.agreement["overall"]["ci_low"],
                              "ci_high": self.agreement["overall"]["ci_high"],
                              "unmatched": len(self.match.unmatched), "file": AGREEMENT_NAME}
        if self.review:
            self.page = build_review(folder, workers=self.workers, truth=truth_map, agreement=self.agreement)
            self.written.append(REVIEW_NAME)
            extra["review"] = {"file": REVIEW_NAME, "bytes": self.page.n_bytes, "sets": self.page.n_sets,
                               "sets_without_image": self.page.n_without_image}
        return extra


def add_to_published(out_dir: str | os.PathLike, step: ReviewStep) -> ReviewStep:
    """Run ``step`` on a published sort (``breastlab review OUT``) under its lock; the manifest is updated.

    series.json is left as it is (``annotate_series`` off): only review.html and
    agreement.json are added or replaced, each atomically, then the manifest's entries
    for them, so that :func:`breastlab.core.publish.verify_outputs` still holds.
    """
    from breastlab.core.publish import MANIFEST_NAME, file_digest, output_lock

    out = Path(out_dir)
    step.annotate_series = False
    with output_lock(out):
        step(out)
        manifest_path = out / MANIFEST_NAME
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return step  # an older sort without a manifest: nothing to keep in step
        files = manifest.setdefault("files", {})
        hashes = any("sha256" in e for e in files.values())
        for name in step.written:
            entry: dict[str, Any] = {"bytes": (out / name).stat().st_size}
            if hashes:
                entry["sha256"] = file_digest(out / name)
            files[name] = entry
        atomic.write_json(manifest_path, manifest)
    return step
