"""breastlab as a node beside a PACS.

* :mod:`~breastlab.pacs.address`: what a PACS URL means (DICOMweb root or ``dicom://AET@host:port``)
  and where its credentials come from (environment or netrc, never the command line).
* :mod:`~breastlab.pacs.dicomweb`: QIDO-RS study search, WADO-RS *metadata only*, STOW-RS.
* :mod:`~breastlab.pacs.metadata`: DICOM JSON -> pydicom ``Dataset`` -> the same
  :class:`~breastlab.dicom.records.InstanceRecord` that file parsing makes.
* :mod:`~breastlab.pacs.dimse`: C-ECHO, C-FIND, C-GET into a folder, C-STORE (pynetdicom).
* :mod:`~breastlab.pacs.sort`: ``breastlab pacs sort`` (records -> the usual rules and outputs).
* :mod:`~breastlab.pacs.sr`: result SR (highdicom) and Secondary Capture overlays.
* :mod:`~breastlab.pacs.listen`: ``breastlab listen``, a C-STORE SCP that sorts studies as they arrive.
* :mod:`~breastlab.pacs.orthanc`: a private Orthanc for tests and benchmarks.
"""
