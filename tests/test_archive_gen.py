"""The large-archive generator of the scale benchmark (bench/archive_gen.py): header-only copies
that the sorter reads as the real series, with fresh UIDs and patient identity per copy."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_generated_copies_are_distinct_header_only_studies(shared_data: Path, tmp_path: Path):
    from archive_gen import disk_usage, generate, load_templates

    from breastlab.dicom.scan import scan_paths

    require(shared_data / "dcmqa" / "ge" / "In")
    templates = [t for t in load_templates(shared_data) if "/ge/" in t.rel][:40]
    assert templates
    info = generate(tmp_path / "gen", 3 * len(templates), templates=templates)
    assert info["copies"] == 3
    scan = scan_paths([str(tmp_path / "gen")], workers=1, progress=False)
    original = scan_paths([str(shared_data / t.rel) for t in templates], workers=1, progress=False)
    assert len(scan.records) == 3 * len(original.records)  # every copy reads as the real image
    odd = [s for s in scan.skipped if s.reason not in {x.reason for x in original.skipped}]
    assert [Path(s.path).name for s in odd] == [".complete.json"]  # the generator's marker only
    by_copy: dict[str, list] = {}
    for r in scan.records:
        by_copy.setdefault(Path(r.path).relative_to(tmp_path / "gen").parts[0], []).append(r)
    assert len(by_copy) == 3
    for field in ("study_uid", "series_uid", "sop_instance_uid"):
        sets = [{getattr(r, field) for r in recs} for recs in by_copy.values()]
        assert not (sets[0] & sets[1]) and not (sets[1] & sets[2]), field  # no UID shared between copies
    ids = [{r.patient_id for r in recs} for recs in by_copy.values()]
    assert not (ids[0] & ids[1])
    header_rows = [(r.series_description, r.rows, r.echo_time) for r in original.records]
    assert sorted(map(str, header_rows)) == sorted(str((r.series_description, r.rows, r.echo_time))
                                                   for r in by_copy["c0000"])
    size = sum(t.size for t in templates) * 3
    assert disk_usage(tmp_path / "gen") < size / 2  # no pixel data on disk (sparse files)
    again = generate(tmp_path / "gen", 3 * len(templates), templates=templates)
    assert again == info  # complete: reused, not written again
