"""Image sets → labels: the rule table, the study-level DCE pass, and the b-value pass.

Classification runs in two passes over every image set of the input:

1. each set's :class:`SetSummary` goes through :data:`breastlab.mri.rules.RULES`;
2. sets that came out ``T1`` (or ``UNKNOWN`` with a dynamic name) are grouped
   into dynamic acquisitions per study (:func:`breastlab.mri.dce.assign_dce`);
   those with ≥2 time points get their phase, and the table runs again.

Each result is a :class:`Classification` with ``source="header"``. A later image
model can produce its own :class:`Classification` (``source="image"``) and
:func:`fuse` decides (``source="both"`` when they agree).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from breastlab.core.labels import DWI_LABELS, Label
from breastlab.core.privacy import hashed_id
from breastlab.mri import dce, diffusion, fieldmap, rules
from breastlab.mri.features import SetSummary, summarize
from breastlab.mri.imageset import ImageSet


@dataclass(frozen=True)
class Classification:
    label: Label
    confidence: float
    evidence: str  # the tags and values that decided it (its source is not part of it)
    rule: str  # the rule name (or the model name for an image classification)
    source: str = "header"  # header | image | both

    @property
    def evidence_text(self) -> str:
        """The evidence as the outputs write it, its source first (``header: TE 90 ms >= 60, ...``)."""
        return f"{self.source}: {self.evidence}" if self.evidence else self.source


@dataclass(frozen=True)
class LabelledSet:
    image_set: ImageSet
    summary: SetSummary
    classification: Classification
    acquisition_key: str
    study: str  # pseudonym of the study (never the patient)
    set_id: str  # unique id in this run, used by instances.csv and the export
    b_value: float | None  # shown for diffusion image sets only

    @property
    def label(self) -> Label:
        return self.classification.label


def study_pseudonym(study_uid: str | None) -> str:
    """A stable folder/column name for a study that reveals no patient identity."""
    if not study_uid:
        return "study-unknown"
    return hashed_id(study_uid, "study-")


def classify_summary(s: SetSummary, *, b_threshold: float = diffusion.DEFAULT_B_THRESHOLD) -> Classification:
    """Run the rule table on one summary.

    Args:
        s: the summary, with its DCE context already filled in (if any).
        b_threshold: a lone or intermediate b-value at or above it is ``DWI_high``.

    Returns:
        The label, confidence, evidence and rule, from the header (``source="header"``).
    """
    rule, evidence = rules.match(s)
    label = rule.label
    confidence = rule.confidence
    if label == rules.DWI:
        b = diffusion.effective_b(s)
        level, reason = diffusion.dwi_level(b, s.series_b_values, b_threshold)
        label = level or Label.UNKNOWN
        evidence = [*evidence, reason]
        if s.b_value is None:
            confidence = min(confidence, 0.75)
    if rule.name.startswith("dce_") and s.dce_seconds is None:
        confidence = min(confidence, 0.6)
    return Classification(label, confidence, "; ".join(evidence), rule.name)


def _is_candidate(s: SetSummary, c: Classification) -> bool:
    if c.label not in (Label.T1, Label.UNKNOWN):
        return False
    return bool(dce.t1_gre_evidence(s) or dce.dynamic_name_evidence(s))


def classify_image_sets(
    sets: Sequence[ImageSet],
    *,
    b_threshold: float = diffusion.DEFAULT_B_THRESHOLD,
) -> list[LabelledSet]:
    """Label every image set from its headers (the two passes of the module docstring).

    Args:
        sets: image sets of one input (from :func:`breastlab.mri.grouping.group_image_sets`).
        b_threshold: see :func:`classify_summary`.

    Returns:
        One :class:`LabelledSet` per image set, in the same order, with a unique ``set_id``.
    """
    summaries = fieldmap.series_context(sets, [summarize(s) for s in sets])
    first = [classify_summary(s, b_threshold=b_threshold) for s in summaries]
    candidate = [_is_candidate(s, c) for s, c in zip(summaries, first)]
    summaries, keys = dce.assign_dce(sets, summaries, candidate)
    out: list[LabelledSet] = []
    used: set[str] = set()
    for st, sm, key in zip(sets, summaries, keys):
        c = classify_summary(sm, b_threshold=b_threshold)
        study = study_pseudonym(st.study_uid)
        sn = st.series_number if st.series_number is not None else "x"
        set_id = f"{study}_s{sn}_{st.index}"
        n = 2
        while set_id in used:
            set_id = f"{study}_s{sn}_{st.index}_{n}"
            n += 1
        used.add(set_id)
        diffusion_like = c.label in DWI_LABELS or c.rule == "dwi_b_unknown"
        out.append(
            LabelledSet(
                image_set=st,
                summary=sm,
                classification=c,
                acquisition_key=key,
                study=study,
                set_id=set_id,
                b_value=diffusion.effective_b(sm) if diffusion_like else None,
            )
        )
    return out
