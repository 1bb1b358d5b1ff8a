"""``--layout bids``: a BIDS data set (validated with the BIDS validator in the tests).

```
DIR/dataset_description.json  participants.tsv  README  .bidsignore
DIR/sub-<subject>/ses-<session>/anat/sub-<s>_ses-<t>_acq-fs_T2w.nii.gz           T2WI_FS
                                anat/sub-<s>_ses-<t>_acq-dynfs_run-1_T1w.nii.gz    DCE_pre (phase 0)
                                anat/sub-<s>_ses-<t>_acq-dynfs_ce-post_run-2_T1w.nii.gz  DCE phase 1, ...
                                dwi/sub-<s>_ses-<t>_dwi.nii.gz (+ .bval .bvec .json)  whole DWI acquisition
DIR/derivatives/breastlab/sub-<s>/ses-<t>/dwi/..._desc-ADC_dwi.nii.gz               ADC, traces, maps, SUB
```

* ``<subject>``: 10 hex digits of SHA-256 of ``patient:`` + PatientID; ``<session>``: the study
  pseudonym's hex digits. No name or ID appears anywhere.
* ``acq-``: ``fs`` for fat suppression, ``dyn`` for a dynamic (DCE) acquisition;
  ``ce-post`` marks post-contrast phases; ``run-<phase + 1>`` numbers the DCE phases in
  time order (BIDS runs start at 1), with ``Breastlab.dce_phase`` and
  ``Breastlab.dce_seconds`` in the sidecar.
* LOCALIZER, MIP, OTHER and UNKNOWN sets are left out and listed in ``conversion.tsv``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from breastlab.convert.layouts.common import Plan, TreeWriter
from breastlab.convert.pipeline import ConvertedImage, UnitResult
from breastlab.convert.units import Unit, dwi_acquisitions, is_derived, is_diffusion, is_trace, plan_units
from breastlab.core.labels import DCE_LABELS, Label
from breastlab.mri.classify import LabelledSet
from breastlab.mri.rules import FAT_SUPPRESSED

BIDS_VERSION = "1.9.0"
LEFT_OUT = {Label.LOCALIZER, Label.MIP, Label.OTHER, Label.UNKNOWN}
DERIVED_LABELS = {Label.ADC, Label.DERIVED, Label.SUB}
REPORT_FILES = ("conversion.tsv", "conversion.json", "provenance.json", "manifest.json")


def plan(sets: Sequence[LabelledSet], **_: Any) -> Plan:
    in_acq = {ls.set_id for g in dwi_acquisitions(sets) for ls in g if not is_trace(ls)}
    left: dict[str, str] = {}
    wanted = []
    for ls in sets:
        if ls.label in LEFT_OUT and not is_diffusion(ls):
            left[ls.set_id] = f"{ls.label}: not part of a BIDS data set"
        elif ls.set_id in in_acq:
            left[ls.set_id] = "converted within the 4D DWI of its acquisition"
        else:
            wanted.append(ls.set_id)
    units = plan_units(sets, want=lambda ls: ls.set_id in wanted)
    return Plan(units, left)


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text) or "x"


def _subject_session(unit: Unit) -> tuple[str, str]:
    from breastlab.convert.units import subject_pseudonym

    return subject_pseudonym(unit.first), _label(unit.study.removeprefix("study-"))


def _entities(unit: Unit) -> tuple[str, str, dict[str, str], str]:
    """(tree, datatype folder, entities, suffix) for one unit; tree is 'raw' or 'derivatives'."""
    ls = unit.first
    label = unit.label
    if unit.kind == "dwi_acquisition":
        return "raw", "dwi", {}, "dwi"
    fs = bool(FAT_SUPPRESSED(ls.summary)) or label == Label.T2WI_FS
    if label in DERIVED_LABELS or (is_diffusion(ls) and is_derived(ls)):
        itype = ls.image_set.records[0].image_type
        if label == Label.ADC:
            desc = str(Label.ADC)
        elif is_trace(ls) or "TRACEW" in itype:
            desc = f"trace{ls.b_value:g}" if ls.b_value is not None else "trace"
        elif label == Label.SUB:
            desc = "sub"
        else:
            desc = _label(itype[-1]) if itype else "derived"
        diffusion = label == Label.ADC or is_diffusion(ls) or "DIFFUSION" in itype
        sn = ls.image_set.series_number
        ent = {"desc": desc}
        if sn is not None:
            ent["run"] = str(sn)
        return "derivatives", "dwi" if diffusion else "anat", ent, "dwi" if diffusion else "T1w"
    if is_diffusion(ls):
        ent = {"acq": f"b{ls.b_value:g}"} if ls.b_value is not None else {}
        return "raw", "dwi", ent, "dwi"
    if label in DCE_LABELS:
        phase = ls.summary.dce_phase or 0
        ent = {"acq": "dyn" + ("fs" if fs else "")}
        if phase > 0:
            ent["ce"] = "post"
        ent["run"] = str(phase + 1)
        return "raw", "anat", ent, "T1w"
    if label in (Label.T2WI, Label.T2WI_FS):
        return "raw", "anat", ({"acq": "fs"} if fs else {}), "T2w"
    return "raw", "anat", ({"acq": "fs"} if fs else {}), "T1w"


ORDER = ("acq", "ce", "rec", "run", "desc")  # BIDS entity order (desc last, as in derivatives)


def _name(sub: str, ses: str, ent: dict[str, str], suffix: str) -> str:
    parts = [f"sub-{sub}", f"ses-{ses}"] + [f"{k}-{ent[k]}" for k in ORDER if k in ent]
    return "_".join(parts) + f"_{suffix}"


def _free_stem(writer: TreeWriter, folder: str, sub: str, ses: str, ent: dict[str, str], suffix: str) -> str:
    stem = f"{folder}/{_name(sub, ses, ent, suffix)}"
    if not writer.taken(stem + ".nii.gz"):
        return stem
    base = dict(ent)
    n = 2
    while True:  # another set already has this name: number the acquisitions (acq-<label>N or run-N)
        e = dict(base)
        if "run" in e:
            e["acq"] = e.get("acq", "") + f"S{n}"
        else:
            e["run"] = str(n)
        stem = f"{folder}/{_name(sub, ses, e, suffix)}"
        if not writer.taken(stem + ".nii.gz"):
            return stem
        n += 1


def _ensure_diffusion_files(writer: TreeWriter, img: ConvertedImage, stem: str) -> None:
    """BIDS needs .bval/.bvec beside every dwi image; dcm2niix omits them for a lone volume."""
    import nibabel as nib

    n = nib.load(str(img.nifti)).shape
    n_vol = int(n[3]) if len(n) > 3 else 1
    b = img.unit.first.b_value or 0
    if img.bval is None:
        writer.write_text(stem + ".bval", " ".join(f"{b:g}" for _ in range(n_vol)) + "\n")
        writer.placed[img.unit.unit_id].append(stem + ".bval")
    if img.bvec is None:
        writer.write_text(stem + ".bvec", "\n".join(" ".join("0" for _ in range(n_vol)) for _ in range(3)) + "\n")
        writer.placed[img.unit.unit_id].append(stem + ".bvec")
        writer.notes[img.unit.unit_id].append("no gradient directions from dcm2niix: bvec written as zeros "
                                              "(a trace or isotropic image)")


def write(results: Sequence[UnitResult], writer: TreeWriter, **_: Any) -> None:
    from breastlab import __version__
    from breastlab.convert.dcm2niix import version as dcm2niix_version

    subjects: dict[str, set[str]] = {}
    derivatives = False
    for res in results:
        if not res.ok:
            continue
        unit = res.unit
        sub, ses = _subject_session(unit)
        tree, dtype, ent, suffix = _entities(unit)
        subjects.setdefault(sub, set()).add(ses)
        prefix = f"sub-{sub}/ses-{ses}/{dtype}" if tree == "raw" else \
            f"derivatives/breastlab/sub-{sub}/ses-{ses}/{dtype}"
        derivatives |= tree == "derivatives"
        for img in res.images:  # index > 0: another image dcm2niix wrote for the set: numbered by run-
            stem = _free_stem(writer, prefix, sub, ses, dict(ent), suffix)
            writer.put_image(img, stem)
            if tree == "raw" and suffix == "dwi":
                _ensure_diffusion_files(writer, img, stem)

    writer.write_json("dataset_description.json", {
        "Name": "breastlab conversion",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [
            {"Name": "breastlab", "Version": __version__, "Description": "breastlab sort --convert --layout bids"},
            {"Name": "dcm2niix", "Version": dcm2niix_version()},
        ],
    })
    writer.write_tsv("participants.tsv", [{"participant_id": f"sub-{s}"} for s in sorted(subjects)],
                     ["participant_id"])
    writer.write_json("participants.json", {"participant_id": {
        "Description": "pseudonym: 10 hex digits of SHA-256 of 'patient:' + the DICOM PatientID"}})
    writer.write_text("README", "Breast MRI converted by breastlab (sort --convert --layout bids) with dcm2niix.\n"
                      "Subjects and sessions are pseudonyms. Each sidecar's \"Breastlab\" block gives the label, "
                      "confidence, evidence, b-value, DCE phase and seconds after pre-contrast, and the source "
                      "DICOM UIDs. conversion.tsv lists every image set and where it went (or why not).\n")
    writer.write_text(".bidsignore", "\n".join(REPORT_FILES) + "\n")
    if derivatives:
        writer.write_json("derivatives/breastlab/dataset_description.json", {
            "Name": "breastlab: derived maps (ADC, traces, parametric maps, subtractions)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "breastlab", "Version": __version__},
                            {"Name": "dcm2niix", "Version": dcm2niix_version()}],
        })
