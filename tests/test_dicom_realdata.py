"""Header parsing on the shared real data (dcm_qa_* and the NACT DCE exam)."""
from __future__ import annotations

import collections
import glob
from pathlib import Path

import pydicom
import pytest

from breastlab.dicom.headers import node_from_dataset, read_records
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.dicom.scan import scan_paths
from conftest import require


def _records(folder: Path) -> list[InstanceRecord]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        result = read_records(path)
        assert not isinstance(result, SkippedFile), result
        out.extend(result)
    return out


def _ref_bvals(path: Path) -> set[float]:
    return {float(v) for v in path.read_text().split()}


def test_ge_b_values_and_t1_zero(shared_data):
    ge = require(shared_data / "dcmqa" / "ge" / "In")
    dwi = _records(ge / "01_Ax_DWI_TENSOR_R2")
    assert {r.b_value for r in dwi} == _ref_bvals(shared_data / "dcmqa/ge/Ref/Ax_DWI_TENSOR_R2_1.bval")
    # b=0 slices have no standard tag: the value comes from GE (0043,1039)
    assert {r.b_value_source for r in dwi if r.b_value == 0} == {"GE (0043,1039)"}
    assert all(r.manufacturer == "GE" and r.vendor.get("(0019,109C)") for r in dwi)
    t1 = _records(ge / "05_3D_Ax_T1_MP_RAGE_R22")
    assert {r.b_value for r in t1} == {0.0}  # GE writes b=0 on T1: never DWI by itself


def test_philips_trace_and_bvals(shared_data):
    folder = require(shared_data / "dcmqa/philips/In/Vanderbilt_2018/601_WIP_dti_ax")
    recs = _records(folder)
    assert len(recs) == 680
    trace = [r for r in recs if r.is_derived_trace]
    assert len(trace) == 40 and all(r.vendor["(2001,1004)"] == "I" and r.b_value == 2000 for r in trace)
    # the b=0 volume also carries 'I' but is not a trace
    assert not any(r.is_derived_trace for r in recs if r.b_value == 0)
    non_trace = {r.b_value for r in recs if not r.is_derived_trace}
    assert non_trace == _ref_bvals(shared_data / "dcmqa/philips/Ref/WIP_dti_ax_601.bval")
    assert {r.vendor["(2001,1020)"] for r in recs} == {"DwiSE"}
    bold = _records(require(shared_data / "dcmqa/philips/In/Magdeburg_2014/fmri"))
    assert {r.b_value for r in bold} == {0.0} and {r.vendor["(2001,1020)"] for r in bold} == {"FEEPI"}


def test_siemens_xa30_enhanced_per_frame(shared_data):
    root = require(shared_data / "dcmqa/siemens_xa30/In")
    dwi = _records(root / "10_DWI_dir80_PA")
    assert len(dwi) == 21 * 39
    assert all(r.frame_index is not None and r.number_of_frames == 39 for r in dwi)
    # one volume per file: per-frame b-values equal the reference .bval set
    assert {r.b_value for r in dwi} == _ref_bvals(shared_data / "dcmqa/siemens_xa30/Ref/10_DWI_dir80_PA.bval")
    assert {r.b_value_source for r in dwi} == {"(0018,9087) per-frame"}
    first = [r for r in dwi if r.path.endswith(".dcm") and r.instance_number == 1]
    positions = {r.image_position for r in first}
    assert len(positions) == 39  # PlanePositionSequence read per frame
    assert all(r.acquisition_datetime and r.acquisition_time for r in dwi)
    assert all(r.temporal_position_index for r in dwi)
    assert {r.image_type[2] for r in dwi} == {"DIFFUSION"}  # FrameType per frame
    assert all(r.repetition_time == 3516 and r.echo_time == 68 for r in dwi)
    trace = _records(root / "12_DWI_dir80_PA")
    assert all(r.is_derived_trace for r in trace)
    t1 = _records(root / "5_anat-T1w_acq-tfl")
    assert len(t1) == 96 and all(r.b_value is None for r in t1)
    assert t1[0].vendor.get("InversionRecovery") == "YES"


def test_siemens_mosaic_bvalues(shared_data):
    root = require(shared_data / "dcmqa/siemens_mosaic_nibabel/In")
    (b0,) = read_records(root / "dwi_b0/siemens_dwi_0.dcm")
    (b1000,) = read_records(root / "dwi_b1000/siemens_dwi_1000.dcm")
    assert b0.is_mosaic and b1000.is_mosaic
    assert (b0.b_value, b1000.b_value) == (0.0, 1000.0)
    assert b1000.b_value_source == "Siemens (0019,100C)"
    assert b1000.transfer_syntax_uid == "1.2.840.10008.1.2"  # implicit VR little endian
    assert b1000.vendor["(0019,100A)"] == "48"  # images in mosaic (US, decoded from implicit VR)


def test_siemens_csa_b_value_when_header_tag_missing(shared_data):
    path = require(shared_data / "dcmqa/siemens_mosaic_nibabel/In/dwi_b1000/siemens_dwi_1000.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    del ds[ds.private_block(0x0019, "SIEMENS MR HEADER").get_tag(0x0C)]
    from breastlab.dicom.bvalues import find_b_value

    assert find_b_value(node_from_dataset(ds), (), "SIEMENS") == (1000.0, "Siemens CSA B_value")


def test_dce_series_fields(shared_data):
    folder = require(shared_data / "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig")
    recs = _records(folder)
    assert len(recs) == 180 and len({r.series_uid for r in recs}) == 1
    times = sorted({r.content_time for r in recs})
    assert times == [10 * 3600 + 25 * 60 + 51, 10 * 3600 + 32 * 60 + 38, 10 * 3600 + 38 * 60 + 32]
    assert all("FS" in r.scan_options and r.contrast_agent == "NONE" for r in recs)
    assert {r.manufacturer for r in recs} == {"GE"}


def test_fast_walker_matches_pydicom(shared_data):
    """The fast path and the pydicom re-encoded path give identical records."""
    from breastlab.dicom import headers

    paths = [
        shared_data / "dcmqa/ge/In/01_Ax_DWI_TENSOR_R2/i22.MRDC.1",
        shared_data / "dcmqa/philips/In/Vanderbilt_2018/601_WIP_dti_ax/0016.dcm",
        shared_data / "dcmqa/siemens_mosaic_nibabel/In/dwi_b1000/siemens_dwi_1000.dcm",
        sorted((shared_data / "dcmqa/siemens_xa30/In/12_DWI_dir80_PA").glob("*.dcm"))[0],
        shared_data / "nact-dce/UCSF-BR-06/image_dce_pe1/1-04.dcm",
    ]
    for path in paths:
        fast = read_records(require(path))
        node, meta = headers._pydicom_node(str(path))
        slow = headers._build_records(str(path), node, meta)
        assert fast == slow, path
        assert [r.vendor for r in fast] == [r.vendor for r in slow]


def test_dcmqa_dwi_b_value_sets_equal_reference(shared_data):
    """Every DWI series with a Ref .bval: the header b-value set equals the reference set."""
    root = require(shared_data / "dcmqa")
    result = scan_paths([root], workers=1, progress=False)
    by_series = collections.defaultdict(set)
    for r in result.records:
        if not r.is_derived_trace:
            by_series[(r.series_number, r.manufacturer)].add(r.b_value)
    refs = {
        ("ge", 1): "ge/Ref/Ax_DWI_TENSOR_R2_1.bval",
        ("philips", 601): "philips/Ref/WIP_dti_ax_601.bval",
        ("siemens_xa30", 10): "siemens_xa30/Ref/10_DWI_dir80_PA.bval",
    }
    vendor = {"ge": "GE", "philips": "PHILIPS", "siemens_xa30": "SIEMENS"}
    for (folder, series), ref in refs.items():
        assert by_series[(series, vendor[folder])] == _ref_bvals(root / ref), folder
    assert len(glob.glob(str(root / "*/Ref/*.bval"))) >= 3  # more vendors may be added to the shared data


@pytest.mark.slow
def test_fast_walker_matches_pydicom_on_every_file(shared_data):
    """Every real file: same records (or same skip reason) from both reading paths."""
    from breastlab.dicom import headers

    files = sorted(p for p in require(shared_data / "dcmqa").rglob("*") if p.is_file() and "/In/" in str(p))
    files += sorted(p for p in require(shared_data / "nact-dce").rglob("*.dcm"))
    compared = 0
    for path in files:
        fast = read_records(path)
        if isinstance(fast, SkippedFile):
            continue
        node, meta = headers._pydicom_node(str(path))
        assert fast == headers._build_records(str(path), node, meta), path
        compared += 1
    assert compared > 1000
