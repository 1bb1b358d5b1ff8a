"""The pydicom fallback: files the fast walker cannot read, and in-memory data sets.

pydicom reads them (bounded: large values are deferred and dropped) and the data set is
re-encoded as Explicit VR Little Endian, so extraction reads the same :class:`Node` as
on the fast path.
"""
from __future__ import annotations

from breastlab.dicom._parse import Node, walk
from breastlab.dicom.opening import open_regular
from breastlab.dicom.tags import DESCEND

#: files larger than this are not handed to pydicom (which would read whole elements)
MAX_FALLBACK = 256 * 1024 * 1024
#: element values pydicom may load in the fallback; longer ones are left unread
FALLBACK_DEFER = 1024 * 1024


def node_from_dataset(ds) -> Node:  # noqa: ANN001 - pydicom Dataset
    """Re-encode a pydicom ``Dataset`` as Explicit VR Little Endian and walk it.

    Used for transfer syntaxes the fast walker does not read, by the tests to run
    in-memory datasets through the same extraction code, and for datasets from other
    sources (e.g. DICOM JSON via ``Dataset.from_json``). Pixel data and top-level
    values pydicom left unread (``defer_size``) are dropped.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element, write_dataset

    def new_buffer() -> DicomBytesIO:
        buffer = DicomBytesIO()
        buffer.is_little_endian = True
        buffer.is_implicit_VR = False
        return buffer

    clean = ds.copy()
    for tag in list(clean.keys()):
        raw = clean.get_item(tag)
        if tag in (0x7FE00010, 0x7FE00008, 0x7FE00009) or (
            getattr(raw, "value", b"") is None and (getattr(raw, "length", 0) or 0) > FALLBACK_DEFER
        ):
            del clean[tag]  # pixels, or a deferred (huge) value: never load it
    fp = new_buffer()
    try:
        write_dataset(fp, clean)
        data = fp.getvalue()
        node, _, _ = walk(data, 0, len(data), True, DESCEND, top=True)
        return node
    except Exception:  # noqa: BLE001 - some value pydicom cannot convert: go element by element
        fp = new_buffer()
    try:
        charset = clean.get("SpecificCharacterSet")
    except Exception:  # noqa: BLE001
        charset = None
    encodings = list(charset) if charset is not None and not isinstance(charset, str) else charset
    for tag in sorted(clean.keys()):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        piece = new_buffer()
        try:  # element by element: one value pydicom cannot convert loses that element only
            elem = correct_ambiguous_vr_element(clean[tag], clean, True)
            write_data_element(piece, elem, encodings)
        except Exception:  # noqa: BLE001
            continue
        fp.write(piece.getvalue())
    data = fp.getvalue()
    node, _, _ = walk(data, 0, len(data), True, DESCEND, top=True)
    return node


def pydicom_node(path: str) -> tuple[Node, dict[int, str]]:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every oddity of a bad file
        with open_regular(path) as fh:  # never a FIFO swapped in since the first look
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, defer_size=FALLBACK_DEFER)
            for tag in list(ds.keys()):  # deferred values cannot be read once the file is closed
                raw = ds.get_item(tag)
                if getattr(raw, "value", b"") is None and (getattr(raw, "length", 0) or 0) > FALLBACK_DEFER:
                    del ds[tag]
        meta = {}
        fm = getattr(ds, "file_meta", None)
        if fm is not None:
            for elem, keyword in ((0x0002, "MediaStorageSOPClassUID"), (0x0010, "TransferSyntaxUID")):
                value = fm.get(keyword)
                if value:
                    meta[elem] = str(value)
        if len(ds) == 0:
            raise ValueError("pydicom found no data elements")
        return node_from_dataset(ds), meta
