"""Per-case picks shared by the nnU-Net and ODELIA layouts: the DCE phases, the T2, the DWI."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from breastlab.convert.units import is_trace
from breastlab.core.labels import DCE_LABELS, Label
from breastlab.mri.classify import LabelledSet


def by_case(sets: Sequence[LabelledSet]) -> dict[str, list[LabelledSet]]:
    """Case = study (its pseudonym names the case folder)."""
    cases: dict[str, list[LabelledSet]] = defaultdict(list)
    for ls in sets:
        cases[ls.study].append(ls)
    return dict(cases)


def dce_phases(sets: Sequence[LabelledSet]) -> tuple[list[LabelledSet], list[LabelledSet]]:
    """(phases of the chosen dynamic acquisition in time order, DCE sets not used).

    The acquisition with most phases wins (then the earliest series).
    """
    acq: dict[str, list[LabelledSet]] = defaultdict(list)
    for ls in sets:
        if ls.label in DCE_LABELS and ls.summary.dce_phase is not None:
            acq[ls.acquisition_key].append(ls)
    if not acq:
        return [], []
    groups = sorted(acq.values(), key=lambda g: (-len(g), min(x.image_set.series_number or 0 for x in g)))
    chosen = sorted(groups[0], key=lambda x: x.summary.dce_phase)
    rest = [x for g in groups[1:] for x in g]
    return chosen, rest


def pick_t2(sets: Sequence[LabelledSet]) -> LabelledSet | None:
    """T2WI (without fat suppression) if there is one, else T2WI_FS; the largest set first."""
    for label in (Label.T2WI, Label.T2WI_FS):
        cands = [ls for ls in sets if ls.label == label]
        if cands:
            return max(cands, key=lambda x: (x.image_set.n_images, -(x.image_set.series_number or 0)))
    return None


def pick_dwi(sets: Sequence[LabelledSet], which: str) -> LabelledSet | None:
    """The lowest-b DWI_low set or the highest-b DWI_high set (a scanner trace preferred at equal b)."""
    label = Label.DWI_LOW if which == "dwi_low" else Label.DWI_HIGH
    cands = [ls for ls in sets if ls.label == label and ls.b_value is not None]
    if not cands:
        return None
    sign = 1 if which == "dwi_low" else -1
    return min(cands, key=lambda x: (sign * x.b_value, not is_trace(x) and "TRACEW" not in
                                     x.image_set.records[0].image_type))


def pick_single(sets: Sequence[LabelledSet], label: str) -> LabelledSet | None:
    cands = [ls for ls in sets if ls.label == label]
    return cands[0] if cands else None
