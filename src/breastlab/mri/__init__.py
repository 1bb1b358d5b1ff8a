"""Breast MRI series sorting from the headers: what every series of an exam is (torch-free).

The entry point is :func:`breastlab.mri.sorter.sort_exam`; the steps, in order, are
:mod:`~breastlab.mri.grouping` (records into image sets), :mod:`~breastlab.mri.features`
(the facts the rules read), :mod:`~breastlab.mri.rules` (the rule table),
:mod:`~breastlab.mri.dce` and :mod:`~breastlab.mri.diffusion` (study-level passes),
:mod:`~breastlab.mri.classify`, then :mod:`~breastlab.mri.outputs` and :mod:`~breastlab.mri.export`.

Example:
    Sort a small synthetic GE exam (written by :mod:`breastlab.phantom.mri`) without writing outputs:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from breastlab.phantom.mri import write_mri_phantom
    >>> from breastlab.mri.sorter import sort_exam
    >>> exam = Path(tempfile.mkdtemp()) / "exam"
    >>> _ = write_mri_phantom(exam, vendors=("GE",), n_slices=4, matrix=32)
    >>> result = sort_exam([exam], workers=1, progress=False)
    >>> sorted({str(s.label) for s in result.sets})  # doctest: +NORMALIZE_WHITESPACE
    ['ADC', 'DCE_delayed', 'DCE_early', 'DCE_pre', 'DWI_high', 'DWI_low', 'LOCALIZER', 'MIP', 'SUB',
     'T1', 'T2WI', 'T2WI_FS']
"""
