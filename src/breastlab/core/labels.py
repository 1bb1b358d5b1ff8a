"""The breast MRI series labels: one type, the exact strings of every output.

:class:`Label` is a :class:`enum.StrEnum`: a member *is* its string, so it
compares equal to, hashes like and is written (CSV, JSON, folder names) exactly
as the text other tools read (``docs/sorting.md``). Code names labels through
this type only; a test (``tests/test_labels.py``) finds any label spelled as a
string literal elsewhere. Importing it pulls in nothing but :mod:`enum`.

Example:
    >>> Label.DCE_EARLY
    <Label.DCE_EARLY: 'DCE_early'>
    >>> Label.DCE_EARLY == "DCE_early", f"{Label.T2WI_FS}", str(Label.ADC)
    (True, 'T2WI_FS', 'ADC')
    >>> Label("DWI_high") is Label.DWI_HIGH
    True
    >>> [Label.dce_phase(p) for p in (0, 1, 4)]
    [<Label.DCE_PRE: 'DCE_pre'>, <Label.DCE_EARLY: 'DCE_early'>, <Label.DCE_DELAYED: 'DCE_delayed'>]
    >>> "DCE_delayed" in DCE_LABELS, Label.DWI_LOW in DWI_LABELS, Label.ADC in DWI_LABELS
    (True, True, False)
"""
from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """What a series (image set) of a breast MRI exam is, in the sorter's vocabulary."""

    T2WI = "T2WI"
    T2WI_FS = "T2WI_FS"
    DWI_LOW = "DWI_low"
    DWI_HIGH = "DWI_high"
    ADC = "ADC"
    T1 = "T1"
    DCE_PRE = "DCE_pre"
    DCE_EARLY = "DCE_early"
    DCE_DELAYED = "DCE_delayed"
    SUB = "SUB"
    MIP = "MIP"
    LOCALIZER = "LOCALIZER"
    DERIVED = "DERIVED"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def dce_phase(cls, phase: int) -> Label:
        """The DCE label of a 0-based time point: 0 is pre, 1 early, 2 and later delayed."""
        return cls.DCE_PRE if phase == 0 else cls.DCE_EARLY if phase == 1 else cls.DCE_DELAYED


#: the labels in output order (the order of ``docs/sorting.md`` and of summary tables)
LABELS: tuple[Label, ...] = tuple(Label)
#: the time points of a dynamic contrast-enhanced acquisition, earliest first
DCE_LABELS: tuple[Label, ...] = (Label.DCE_PRE, Label.DCE_EARLY, Label.DCE_DELAYED)
#: diffusion-weighted image sets (low and high b-value; an ADC map is not one)
DWI_LABELS: tuple[Label, ...] = (Label.DWI_LOW, Label.DWI_HIGH)
