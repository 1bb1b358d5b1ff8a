"""Hand-built InstanceRecords for the MRI sorting tests (no files)."""
from __future__ import annotations

import itertools

from breastlab.dicom.records import InstanceRecord

_uid = itertools.count(1)


def rec(**kw) -> InstanceRecord:
    """One record with MR defaults; pass any InstanceRecord field."""
    n = next(_uid)
    base = dict(
        path=f"/in/f{n:05d}.dcm",
        modality="MR",
        study_uid="1.2.3",
        series_uid="1.2.3.1",
        series_number=1,
        sop_instance_uid=f"1.2.3.9.{n}",
        instance_number=n,
        manufacturer="SIEMENS",
        rows=64,
        columns=64,
        image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    )
    base.update(kw)
    return InstanceRecord(**base)


def volume(n_slices: int = 4, *, z0: float = 0.0, **kw) -> list[InstanceRecord]:
    """One volume: ``n_slices`` records at distinct positions, sharing ``kw``."""
    return [rec(image_position=(0.0, 0.0, z0 + 2.0 * k), **kw) for k in range(n_slices)]


T1_GRE = dict(repetition_time=4.5, echo_time=2.0, flip_angle=12.0, scanning_sequence=("GR",),
              sequence_name="*fl3d1", series_description="t1_fl3d_tra_dyn", scan_options=("FS",))
T2_TSE = dict(repetition_time=4000.0, echo_time=90.0, flip_angle=150.0, scanning_sequence=("SE",),
              sequence_name="*tse2d1_15", series_description="t2_tse_tra")
