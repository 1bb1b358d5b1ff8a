"""The sequence rules, as data.

:data:`RULES` is an ordered table. Each :class:`Rule` names a label, the
conditions that must all hold, a confidence and a one-line explanation. The
first rule whose conditions all hold labels the image set; the evidence is the
text each condition returned (the tags and values that decided it). Conditions
are small named functions of a :class:`~breastlab.mri.features.SetSummary`
returning evidence text or ``None``.

Two label values are resolved after matching: ``DWI`` becomes ``DWI_low`` or
``DWI_high`` from the b-value (:func:`breastlab.mri.diffusion.dwi_level`).
``docs/sorting.md`` renders this table (:func:`rules_markdown`).

Example:
    A long-TE turbo spin echo with fat suppression, built by hand (no files):

    >>> rule, evidence = match(SetSummary(echo_time=90.0, repetition_time=4500.0, scan_options=("FS",)))
    >>> rule.name, rule.label, evidence
    ('t2_fs', <Label.T2WI_FS: 'T2WI_FS'>, ['TE 90 ms >= 60, TR 4500 ms', 'ScanOptions FS'])
    >>> [r.name for r in RULES][:3]
    ['non_mr', 'localizer_type', 'field_map']
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from breastlab.core.labels import LABELS, Label
from breastlab.mri import dce, diffusion, fieldmap
from breastlab.mri.features import SetSummary
from breastlab.mri.names import LOCALIZER_NAME_RE, without_bids_entities

DWI = "DWI"  # placeholder, not a label: resolved to DWI_low or DWI_high from the b-value


@dataclass(frozen=True)
class Cond:
    """A named test: returns evidence text when it holds, else None."""

    name: str
    test: Callable[[SetSummary], str | None]
    doc: str

    def __call__(self, s: SetSummary) -> str | None:
        return self.test(s)


def NOT(c: Cond) -> Cond:  # noqa: N802 - reads like the table
    return Cond(f"not {c.name}", lambda s: None if c(s) else f"not {c.name}", f"not: {c.doc}")


@dataclass(frozen=True)
class Rule:
    name: str
    label: Label | str  # a Label, or the DWI placeholder
    conditions: tuple[Cond, ...]
    confidence: float
    explanation: str

    def match(self, s: SetSummary) -> list[str] | None:
        evidence = []
        for c in self.conditions:
            e = c(s)
            if not e:
                return None
            if not c.name.startswith("not "):
                evidence.append(e)
        return evidence


# --------------------------------------------------------------------------- helpers

def _it(s: SetSummary) -> str:
    return "\\".join(s.image_type)


def _tok(pattern: str) -> re.Pattern:
    """A word pattern where '_', '-', digits and spaces are boundaries (FS matches 'T2_FS', not 'FSE')."""
    return re.compile(rf"(?<![A-Z])(?:{pattern})(?![A-Z])", re.I)


def _name(pattern: re.Pattern, where: str = "names") -> Callable[[SetSummary], str | None]:
    def test(s: SetSummary) -> str | None:
        text = getattr(s, where)
        m = pattern.search(without_bids_entities(text))  # 'task-fa' names a task, not FA
        return f"name '{m.group(0).strip()}' in '{text}'" if m else None

    return test


def _itype(*tokens: str, prefix: bool = False) -> Callable[[SetSummary], str | None]:
    want = {t.upper() for t in tokens}

    def test(s: SetSummary) -> str | None:
        for t in s.image_type:
            if t in want or (prefix and any(t.startswith(w) for w in want)):
                return f"ImageType {_it(s)}"
        return None

    return test


# --------------------------------------------------------------------------- conditions

def _not_original(s: SetSummary) -> str | None:
    return None if s.image_type[:1] == ("ORIGINAL",) else f"ImageType {_it(s) or 'absent'} (not ORIGINAL)"


#: a name may label a computed image only when the scanner did not mark it ORIGINAL
NOT_ORIGINAL = Cond("not_original", _not_original, "ImageType is not ORIGINAL (absent, DERIVED, ...)")

FIELD_MAP = Cond("field_map", fieldmap.field_map_evidence,
                 "field map: Siemens fm2d/fm3d sequence, GE B0map/fieldmap pulse sequence, ImageType B0 MAP, "
                 "or two or more echoes with phase images in one series")
PHASE_IMAGE = Cond("phase_image", fieldmap.phase_evidence,
                   "phase/real/imaginary image: ImageType P/PHASE/R/I (or Philips P_FFE...), "
                   "ComplexImageComponent PHASE/REAL/IMAGINARY, GE (0043,102F) 1-3")

#: sequences that are none of the labels, as the scanner names them (Siemens SequenceName ``*swi3d1r``,
#: ``*tfi2d1`` TrueFISP, ``*ci3d`` CISS; GE pulse sequence ``fiesta``/``swan``; Philips technique ``BFFE``)
SEQUENCE_OTHER_RE = re.compile(r"(?:^|\*)(?:SWI|TFI|CI3D)|FIESTA|SWAN|^BFFE$|^B-TFE", re.I)


def _sequence_other(s: SetSummary) -> str | None:
    for where, name in (("SequenceName", s.sequence_name or ""), ("GE pulse sequence", s.vendor.get("(0019,109C)", "")),
                        ("Philips technique", s.vendor.get("(2001,1020)", ""))):
        if name and SEQUENCE_OTHER_RE.search(name.strip()):
            return f"{where} '{name}' (SWI/SSFP)"
    return None


SEQUENCE_OTHER = Cond("sequence_other", _sequence_other,
                      "the scanner's sequence name is SWI or steady-state free precession (TrueFISP, CISS, FIESTA, "
                      "SWAN, balanced FFE)")

#: AcquisitionContrast (0008,9209) values that are none of the labels' weightings
OTHER_CONTRASTS = ("PROTON_DENSITY", "T2_STAR", "FLOW_ENCODED", "FLUID_ATTENUATED", "TAGGING", "TOF")


def _other_contrast(s: SetSummary) -> str | None:
    c = s.vendor.get("AcquisitionContrast")
    return f"AcquisitionContrast {c}" if c in OTHER_CONTRASTS else None


OTHER_CONTRAST = Cond("other_contrast", _other_contrast,
                      "AcquisitionContrast PROTON_DENSITY, T2_STAR, FLOW_ENCODED, FLUID_ATTENUATED, TAGGING or TOF")


def _dce_partial(s: SetSummary) -> str | None:
    return s.dce_partial


def _secondary(s: SetSummary) -> str | None:
    if (s.sop_class_uid or "").startswith("1.2.840.10008.5.1.4.1.1.7"):
        return f"Secondary Capture (SOP class {s.sop_class_uid})"
    if s.image_type[:1] == ("DERIVED",) or s.image_type[1:2] == ("SECONDARY",):
        return f"ImageType {_it(s)}"
    return None


DCE_PARTIAL = Cond("dce_partial", _dce_partial,
                   "a single image or partial set beside a dynamic acquisition of the same protocol, "
                   "or not geometrically consistent with the other phases")
SECONDARY = Cond("secondary", _secondary, "Secondary Capture, ImageType DERIVED or SECONDARY")

NON_MR = Cond("non_mr", lambda s: f"Modality {s.modality}" if s.modality and s.modality != "MR" else None,
              "Modality is not MR")

LOCALIZER_TYPE = Cond("localizer_type", _itype("LOCALIZER"), "ImageType contains LOCALIZER")
LOCALIZER_NAME = Cond("localizer_name", _name(LOCALIZER_NAME_RE),
                      "name says localizer/loc/3-plane/survey/scout/calibration")

MIP_TYPE = Cond("mip_type", _itype("MIP", "PROJECTION IMAGE", "MAXIMUM", prefix=True),
                "ImageType MIP*/PROJECTION IMAGE")
MIP_NAME = Cond("mip_name", _name(_tok(r"MIP|MAXIMUM INTENSITY")), "name says MIP")

SUB_TYPE = Cond("sub_type", _itype("SUB", "SUBTRACT", "SUBTRACTION", "SUBTRACTED"), "ImageType SUB/SUBTRACTION")
SUB_NAME = Cond("sub_name", _name(re.compile(r"(?<![A-Z])SUB(?:TRACT\w*|S)?(?![A-Z])|POST.?MINUS.?PRE|POST.?-.?PRE", re.I)),
                "name says SUB/subtraction")

ADC_TYPE = Cond("adc_type", _itype("ADC", "ADC_UNSPECIFIED"), "ImageType ADC (not eADC)")
ADC_NAME = Cond("adc_name", _name(re.compile(r"(?<![A-Z])D?ADC(?![A-Z])|APPARENT DIFF", re.I), "description_names"),
                "description says ADC / apparent diffusion")

SINGLE_B = Cond("single_b", lambda s: f"{len(s.series_b_values)} b-value(s) in series"
                if len(s.series_b_values) <= 1 else None, "the series has at most one b-value")

DERIVED_MAP_TOKENS = (
    "FA", "COLFA", "TENSOR", "TENSOR_B0", "B0", "EADC", "EXP", "CDWI", "CALC_BVALUE", "PE1", "PE2", "SER", "MAP",
    "T1MAP", "T2MAP", "R2STAR", "KTRANS", "WASHIN", "WASHOUT", "TTP", "AUC", "MTT", "CBV", "CBF", "MAX_SLOPE",
)
DERIVED_MAP_TYPE = Cond("derived_map_type", _itype(*DERIVED_MAP_TOKENS),
                        "ImageType names a computed map (FA, TENSOR, eADC, PE, SER, ...)")
DERIVED_MAP_NAME = Cond(
    "derived_map_name",
    _name(re.compile(
        r":\s*(?:PE\d?|SER)\b|(?<![A-Z])(?:FA|COLFA|EADC|KTRANS|TTP|WASH.?IN|WASH.?OUT|SER|PE\d|MTT|CBV|CBF|CALC.?BVAL\w*|"
        r"PARAMETRIC|COLOU?R ?MAP|T1 ?MAP|T2 ?MAP)(?![A-Z])|EXPONENTIAL", re.I), "description_names"),
    "description names a computed map",
)
DERIVED_GENERIC = Cond("derived_image", lambda s: f"ImageType {_it(s)}"
                       if s.image_type[:1] == ("DERIVED",) else None, "ImageType starts with DERIVED")

DIFFUSION = Cond("diffusion", diffusion.diffusion_evidence,
                 "diffusion evidence beyond a b-value tag (ImageType DIFFUSION/TRACEW, trace flag, "
                 "DiffusionDirectionality, b>0 with EPI or Philips direction, Siemens ep_b name, DWI name)")


def _b_known(s: SetSummary) -> str | None:
    b = diffusion.effective_b(s)
    return f"b={b:g} ({'header' if s.b_value is not None else 'SequenceName'})" if b is not None else None


B_KNOWN = Cond("b_known", _b_known, "the b-value is known")

DCE_PHASE0 = Cond("dce_phase_0", lambda s: _dce(s, lambda p: p == 0), "earliest time point of a dynamic acquisition")
DCE_PHASE1 = Cond("dce_phase_1", lambda s: _dce(s, lambda p: p == 1), "second time point")
DCE_PHASE2 = Cond("dce_phase_2+", lambda s: _dce(s, lambda p: p >= 2), "third or later time point")


def _dce(s: SetSummary, ok: Callable[[int], bool]) -> str | None:
    if s.dce_phase is None or not ok(s.dce_phase):
        return None
    sec = f", {s.dce_seconds:.0f} s after pre" if s.dce_seconds is not None else ""
    return f"time point {s.dce_phase} of {s.dce_n_phases} ordered by {s.dce_timing}{sec}"


EPI = Cond("epi", diffusion.is_epi, "echo-planar (ScanningSequence EP, EPI/BOLD/fMRI name)")


def _stir(s: SetSummary) -> str | None:
    if s.vendor.get("AcquisitionContrast") == "STIR":
        return "AcquisitionContrast STIR"
    m = _tok(r"STIR|TIRM|T2.?IR").search(without_bids_entities(s.names))
    if m:
        return f"name '{m.group(0)}'"
    ti, tr = s.inversion_time, s.repetition_time
    ir = "IR" in s.scanning_sequence or s.vendor.get("InversionRecovery") == "YES"
    if ir and ti is not None and 80 <= ti <= 300 and (tr is None or tr >= 1000):
        return f"inversion recovery, TI {ti:g} ms (fat nulling)"
    return None


STIR = Cond("stir", _stir, "STIR: name STIR/TIRM, or IR with TI 80-300 ms")


def _fat_suppressed(s: SetSummary) -> str | None:
    opts = {o.strip() for o in s.scan_options}
    for o in ("FS", "SFS"):
        if o in opts:
            return f"ScanOptions {o}"
    sss = s.spectrally_selected_suppression
    if sss and ("FAT" in sss):
        return f"SpectrallySelectedSuppression {sss}"
    if s.vendor.get("SpectrallySelectedExcitation") == "WATER":
        return "SpectrallySelectedExcitation WATER (water excitation)"
    itype = set(s.image_type)
    if itype & {"W", "WATER"} and not itype & {"F", "FAT"}:
        return f"Dixon water image (ImageType {_it(s)})"
    m = _tok(r"SPAIR|SPIR|FAT.?SAT\w*|FATSAT|FS|F\.S\.|WATER|DIXON.?W|IDEAL.?W\w*|FLEX.?W\w*|SPECIAL|PROSET").search(
        without_bids_entities(s.names))
    if m:
        return f"name '{m.group(0)}'"
    return None


FAT_SUPPRESSED = Cond("fat_suppressed", _fat_suppressed,
                      "ScanOptions FS/SFS, SpectrallySelectedSuppression FAT, water excitation, Dixon water, "
                      "names SPAIR/SPIR/FATSAT/FS/WATER")


def _t2_weighted(s: SetSummary) -> str | None:
    te, tr = s.echo_time, s.repetition_time
    if s.vendor.get("AcquisitionContrast") == "T2":
        return "AcquisitionContrast T2"
    if s.vendor.get("AcquisitionContrast") in ("T1", *OTHER_CONTRASTS):  # the scanner's word beats the thresholds
        return None
    if te is not None and te >= 60 and (tr is None or tr >= 1000):
        return f"TE {te:g} ms >= 60" + (f", TR {tr:g} ms" if tr is not None else "")
    return None


T2_WEIGHTED = Cond("t2_weighted", _t2_weighted, "TE >= 60 ms and TR >= 1000 ms (or AcquisitionContrast T2)")


def _t1_weighted(s: SetSummary) -> str | None:
    if s.vendor.get("AcquisitionContrast") == "T1":
        return "AcquisitionContrast T1"
    # the scanner's own word beats the thresholds
    if s.vendor.get("AcquisitionContrast") in ("T2", "STIR", "DIFFUSION", *OTHER_CONTRASTS):
        return None
    gre = dce.t1_gre_evidence(s)
    if gre:
        return gre
    te, tr = s.echo_time, s.repetition_time
    if te is not None and tr is not None and te <= 30 and tr <= 800 and "EP" not in s.scanning_sequence:
        return f"TE {te:g} ms <= 30, TR {tr:g} ms <= 800"
    return None


T1_WEIGHTED = Cond("t1_weighted", _t1_weighted, "short TE/TR (spin or gradient echo), or AcquisitionContrast T1")
T2_NAME = Cond("t2_name", _name(_tok(r"T2\w*|HASTE|SSFSE"), "description_names"), "description says T2 (or HASTE/SSFSE)")
T1_NAME = Cond("t1_name", _name(_tok(r"T1\w*|MPRAGE|MP-RAGE|BRAVO|VIBE|THRIVE|LAVA|VIBRANT|SPGR|FLASH"), "description_names"),
               "description says T1 or a T1 sequence")
KNOWN_OTHER = Cond(
    "known_other",
    _name(_tok(r"PD\w*|PROTON|SPECTRO\w*|SVS|CSI|MRS|FLAIR|SWI|TOF|PHASE.?CONTRAST|ASL|PERF\w*|ELASTO\w*|B1.?MAP|FIESTA|TRUFI\w*|BFFE|PHANTOM"),
          "names"),
    "a known other sequence (PD, spectroscopy, FLAIR, SWI, TOF, ASL, SSFP, ...)",
)
ALWAYS = Cond("always", lambda s: "no rule matched", "always holds")


# --------------------------------------------------------------------------- the table

RULES: tuple[Rule, ...] = (
    Rule("non_mr", Label.OTHER, (NON_MR,), 0.95, "not an MR image (e.g. SEG, SR, PR)"),
    Rule("localizer_type", Label.LOCALIZER, (LOCALIZER_TYPE,), 0.95, "scanner marks it a localizer"),
    Rule("field_map", Label.OTHER, (FIELD_MAP,), 0.9, "a B0 field map (magnitude or phase) is no weighting"),
    Rule("phase_image", Label.OTHER, (PHASE_IMAGE,), 0.9, "a phase, real or imaginary image is no weighting"),
    Rule("localizer_name", Label.LOCALIZER, (LOCALIZER_NAME,), 0.85, "named localizer/survey/scout/calibration"),
    Rule("mip_type", Label.MIP, (MIP_TYPE,), 0.95, "scanner marks it a projection"),
    Rule("mip_name", Label.MIP, (MIP_NAME, NOT_ORIGINAL), 0.85, "named MIP, not marked ORIGINAL"),
    Rule("sub_type", Label.SUB, (SUB_TYPE,), 0.95, "scanner marks it a subtraction"),
    Rule("sub_name", Label.SUB, (SUB_NAME, NOT_ORIGINAL), 0.8, "named subtraction, not marked ORIGINAL"),
    Rule("adc_type", Label.ADC, (ADC_TYPE,), 0.95, "scanner marks it an ADC map"),
    Rule("adc_name", Label.ADC, (ADC_NAME, SINGLE_B, NOT(DERIVED_MAP_TYPE), NOT_ORIGINAL), 0.85,
         "named ADC, one b-value at most, not marked ORIGINAL"),
    Rule("derived_map_type", Label.DERIVED, (DERIVED_MAP_TYPE,), 0.95, "ImageType names a computed map"),
    Rule("derived_map_name", Label.DERIVED, (DERIVED_MAP_NAME, NOT_ORIGINAL), 0.8,
         "named as a computed map, not marked ORIGINAL"),
    Rule("dwi", DWI, (DIFFUSION, B_KNOWN), 0.9,
         "diffusion-weighted; lowest b of the acquisition is DWI_low, highest DWI_high, "
         "a lone or intermediate b uses the threshold"),
    Rule("dwi_b_unknown", Label.UNKNOWN, (DIFFUSION, NOT(B_KNOWN)), 0.3, "diffusion-weighted but the b-value is unknown"),
    Rule("dce_partial_derived", Label.DERIVED, (DCE_PARTIAL, SECONDARY), 0.8,
         "a secondary capture or derived copy of part of a dynamic acquisition"),
    Rule("dce_partial", Label.OTHER, (DCE_PARTIAL,), 0.8,
         "a single image or partial set beside a dynamic acquisition: not a phase"),
    Rule("dce_pre", Label.DCE_PRE, (DCE_PHASE0,), 0.9, "first time point of a dynamic T1 acquisition"),
    Rule("dce_early", Label.DCE_EARLY, (DCE_PHASE1,), 0.9, "first post-contrast time point"),
    Rule("dce_delayed", Label.DCE_DELAYED, (DCE_PHASE2,), 0.9, "later post-contrast time points"),
    Rule("epi_other", Label.OTHER, (EPI,), 0.7, "echo-planar without diffusion evidence (BOLD, perfusion)"),
    Rule("other_contrast", Label.OTHER, (OTHER_CONTRAST,), 0.8, "the scanner declares a contrast none of the labels has"),
    Rule("sequence_other", Label.OTHER, (SEQUENCE_OTHER,), 0.8,
         "SWI and SSFP are short-TR gradient echoes the T1 thresholds would catch"),
    Rule("stir", Label.T2WI_FS, (STIR,), 0.85, "STIR is a fat-suppressed T2-weighted image"),
    Rule("t2_fs", Label.T2WI_FS, (T2_WEIGHTED, FAT_SUPPRESSED), 0.9, "long TE/TR with fat suppression"),
    Rule("t2", Label.T2WI, (T2_WEIGHTED, NOT(FAT_SUPPRESSED)), 0.85, "long TE/TR without fat suppression"),
    Rule("t1", Label.T1, (T1_WEIGHTED,), 0.85, "short TE/TR (one time point, or not part of a dynamic acquisition)"),
    Rule("t2_name_fs", Label.T2WI_FS, (T2_NAME, FAT_SUPPRESSED), 0.6, "timing missing; named T2 with fat suppression"),
    Rule("t2_name", Label.T2WI, (T2_NAME,), 0.6, "timing missing; named T2"),
    Rule("t1_name", Label.T1, (T1_NAME,), 0.6, "timing missing; named T1"),
    Rule("known_other", Label.OTHER, (KNOWN_OTHER,), 0.6, "a known sequence that is none of the labels"),
    Rule("derived_other", Label.DERIVED, (DERIVED_GENERIC,), 0.5, "a derived image of no known kind"),
    Rule("fallback", Label.UNKNOWN, (ALWAYS,), 0.0, "not enough evidence: no guess"),
)


def match(s: SetSummary) -> tuple[Rule, list[str]]:
    """The first rule of :data:`RULES` whose conditions all hold.

    Args:
        s: the summary of one image set (DCE fields filled in when it is part of a dynamic acquisition).

    Returns:
        The rule and its evidence: one text per condition that is not a negation.
    """
    for rule in RULES:
        evidence = rule.match(s)
        if evidence is not None:
            return rule, evidence
    raise AssertionError("the fallback rule always matches")  # pragma: no cover


def rules_markdown() -> str:
    """The rule table as Markdown (rendered into docs/sorting.md)."""
    lines = ["| # | rule | label | conditions (all must hold) | confidence | why |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(RULES, 1):
        label = "DWI_low / DWI_high" if r.label == DWI else r.label
        conds = "; ".join(f"`{c.name}`: {c.doc}" for c in r.conditions)
        lines.append(f"| {i} | `{r.name}` | {label} | {conds} | {r.confidence:.2f} | {r.explanation} |")
    return "\n".join(lines)
