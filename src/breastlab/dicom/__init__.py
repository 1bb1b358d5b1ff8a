"""DICOM I/O: header parsing into typed records, vendor b-values, parallel scanning.

* :func:`breastlab.dicom.headers.read_records` - one file -> records (one per frame) or a skip reason
* :func:`breastlab.dicom.scan.scan_paths` - folders / files / path lists, in worker processes
* :mod:`breastlab.dicom.bvalues` - the vendor b-value sources, tried in order
"""
