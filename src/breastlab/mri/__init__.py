"""Breast MRI series sorting from the headers: what every series of an exam is (torch-free).

The entry point is :func:`breastlab.mri.sorter.sort_exam`; the steps, in order, are
:mod:`~breastlab.mri.grouping` (records into image sets), :mod:`~breastlab.mri.features`
(the facts the rules read), :mod:`~breastlab.mri.rules` (the rule table),
:mod:`~breastlab.mri.dce` and :mod:`~breastlab.mri.diffusion` (study-level passes),
:mod:`~breastlab.mri.classify`, then :mod:`~breastlab.mri.outputs` and :mod:`~breastlab.mri.export`.
"""
