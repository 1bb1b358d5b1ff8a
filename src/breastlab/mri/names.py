"""Series-name patterns that more than one step reads.

The rule table (:mod:`breastlab.mri.rules`) labels a set named like a localizer
``LOCALIZER``; grouping (:func:`breastlab.mri.dce.may_be_dynamic`) never splits such
a series into time points. Both read the one pattern here, so they cannot disagree.

Example:
    >>> [bool(LOCALIZER_NAME_RE.search(n)) for n in ("3-Plane Loc", "ASSET cal", "t1_fl3d_dyn", "BLOCK")]
    [True, True, False, False]
"""
from __future__ import annotations

import re

#: localizer, survey, scout and calibration scans, by the words a scanner or a person writes
LOCALIZER_NAME_RE = re.compile(
    r"LOCALI[SZ]ER|(?<![A-Z])LOC(?![A-Z])|3.?PLANE|TRI.?PILOT|SURVEY|SCOUT|SMARTEXAM|AAHEAD|(?<![A-Z])CAL(?:IBRATION)?(?![A-Z])|ASSET.?CAL",
    re.I,
)

#: BIDS ``key-value`` entities (``task-fa``, ``acq-tfl``, ``run-1``): the value names a task,
#: an acquisition label or a count chosen by a person, never what the image is
BIDS_ENTITY_RE = re.compile(
    r"(?<![A-Z0-9])(?:SUB|SES|TASK|ACQ|CE|TRC|STAIN|REC|DIR|RUN|MOD|ECHO|FLIP|INV|MT|PART|RECORDING|SPACE|DESC|LABEL)"
    r"-[A-Z0-9]+",
    re.I,
)


def without_bids_entities(text: str) -> str:
    """``text`` with BIDS ``key-value`` entities blanked, so their values are not read as words.

    Example:
        >>> without_bids_entities("FUNC-BOLD_TASK-FA_RUN-1")
        'FUNC-BOLD_ _ '
        >>> without_bids_entities("DTI_FA")
        'DTI_FA'
    """
    return BIDS_ENTITY_RE.sub(" ", text)
