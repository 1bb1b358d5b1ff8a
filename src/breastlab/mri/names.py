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
