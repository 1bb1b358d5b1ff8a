"""Image-based MRI sequence and DCE-phase models, header-free phase ordering, and fusion with the header rules.

* :mod:`.phase_order` orders the DCE phases of one exam by enhancement (no headers).
* :mod:`.volumes` loads header-free slices and regroups them into volumes from geometry.
* :mod:`.strip` writes a header-stripped copy of DICOM files (for measuring the header-free path).
* :mod:`.data` reads the training inputs (class folders, manifest CSV, corrected series.csv).
* :mod:`.aggregate` turns slice probabilities into one label per series.
* :mod:`.model` trains, saves and applies the series classifier.
* :mod:`.fusion` merges image-model labels with the header rules of ``breastlab sort``.
"""
