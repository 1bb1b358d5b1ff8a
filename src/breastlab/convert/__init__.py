"""From sorted series to analysis-ready data: NIfTI + JSON sidecars in a BIDS, nnU-Net or ODELIA layout.

>>> from breastlab.mri.sorter import sort_exam                       # doctest: +SKIP
>>> from breastlab.convert import convert_sorted                     # doctest: +SKIP
>>> result = sort_exam(["exam/"], out_dir="sorted")                  # doctest: +SKIP
>>> conv = convert_sorted(result, "bids/", layout="bids")            # doctest: +SKIP
>>> [(r.unit.unit_id, r.ok) for r in conv.results]                   # doctest: +SKIP

Each labelled image set is converted on its own by dcm2niix from exactly its files
and frames; a DWI acquisition also whole (4D + ``.bval``/``.bvec``). The tree is
written into a staging folder beside ``dest`` and published whole
(:func:`breastlab.core.publish.staged_outputs`): a reader sees the previous tree or the
new one, never a mix, and a killed run leaves nothing behind. See docs/export.md.
"""
from __future__ import annotations

from breastlab.convert.convert import ConversionResult, convert_sorted

__all__ = ["ConversionResult", "convert_sorted"]
