"""Archive scale (issue 10): streaming per study, the persistent header index, incremental
re-runs, kill-resume, `breastlab query`, and the sort result built once (issue 8, item 4)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require

OUTPUTS = ("series.csv", "series.json", "instances.csv", "skipped.csv")


def link_tree(src: Path, dst: Path) -> Path:
    """Hard-link the files of ``src`` under ``dst`` (cheap copies; inputs stay untouched)."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return dst


def same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    pa, pb = (json.loads((d / "provenance.json").read_text()) for d in (a, b))
    assert pa["summary"] == pb["summary"]


def sort(inputs: list[Path], out: Path, **kw):
    from breastlab.mri.sorter import sort_exam

    return sort_exam(inputs, out_dir=out, workers=1, progress=False, **kw)


@pytest.fixture
def archive(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for vendor in ("ge", "siemens_xa30", "transfer_syntax"):
        link_tree(require(shared_data / "dcmqa" / vendor / "In"), root / vendor)
    return root


def test_incremental_rerun_reads_only_new_files_and_equals_a_full_run(archive, shared_data, tmp_path):
    out = tmp_path / "out"
    first = sort([archive], out)
    n_first = first.index["files_read"]
    assert n_first > 0 and first.index["files_reused"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "archive", "out"]  # no journal left
    assert list((out / "index").glob("part-*.parquet"))

    # the archive grows by one exam, and one file is deleted
    link_tree(require(shared_data / "dcmqa" / "nih" / "In"), archive / "nih")
    gone = sorted((archive / "ge").rglob("*"))[-1]
    gone.unlink()
    again = sort([archive], out)
    n_new = sum(1 for p in (archive / "nih").rglob("*") if p.is_file())
    assert again.index["files_read"] == n_new
    assert again.index["files_reused"] == n_first - 1

    clean = sort([archive], tmp_path / "clean")
    same_outputs(out, clean.out_dir)
    assert str(gone) not in (out / "instances.csv").read_text() + (out / "skipped.csv").read_text()

    import pyarrow.parquet as pq

    rows = pq.read_table(out / "index").num_rows
    assert rows == pq.read_table(tmp_path / "clean" / "index").num_rows  # deleted file's rows dropped
    full = sort([archive], out, full=True)
    assert full.index["files_reused"] == 0
    same_outputs(out, clean.out_dir)


def test_a_changed_file_is_read_again(archive, tmp_path):
    out = tmp_path / "out"
    sort([archive], out)
    victim = next(p for p in sorted((archive / "transfer_syntax").rglob("*")) if p.is_file())
    data = victim.read_bytes()
    victim.unlink()  # a new file, not the hard-linked shared one
    victim.write_bytes(data[:200])  # now truncated
    again = sort([archive], out)
    assert again.index["files_read"] == 1
    assert any(s.path == str(victim) and s.reason in ("truncated", "corrupt") for s in again.skipped)
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)


def test_index_without_keep_phi_holds_no_patient_identity(archive, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    sort([archive], out)
    index = pq.read_table(out / "index", columns=["status", "patient_id", "patient_name", "record"]).to_pylist()
    records = [r for r in index if r["status"] == "record"]
    assert records and all(r["patient_id"] is None and r["patient_name"] is None for r in records)
    assert all(r["record"] is None or json.loads(r["record"])["patient_id"] is None for r in records)
    sort([archive], out, keep_phi=True)  # a change of --keep-phi reads the files again
    index = pq.read_table(out / "index", columns=["status", "patient_id"]).to_pylist()
    assert any(r["patient_id"] for r in index if r["status"] == "record")


def test_sort_instances_equals_sort_exam(archive, tmp_path):
    """The entry point for already-parsed records (e.g. PACS DICOM JSON) runs the same pipeline."""
    from breastlab.dicom.scan import scan_paths
    from breastlab.mri.sorter import sort_instances

    ref = sort([archive], tmp_path / "ref")
    scan = scan_paths([archive], workers=1, progress=False)
    got = sort_instances(scan.records, scan.skipped, inputs=[str(archive)], out_dir=tmp_path / "pacs",
                         n_files=scan.n_files)
    assert [s.set_id for s in got.sets] == [s.set_id for s in ref.sets]
    same_outputs(tmp_path / "pacs", tmp_path / "ref")


def test_query_answers_sql_over_index_and_outputs(archive, tmp_path):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    out = tmp_path / "out"
    result = sort([archive], out)
    runner = CliRunner()
    res = runner.invoke(app, ["query", str(out), "SELECT count(*) AS n FROM headers WHERE status = 'record'"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["n", str(result.n_records)]
    res = runner.invoke(app, ["query", str(out), "SELECT label, count(*) AS n FROM series GROUP BY label ORDER BY label"])
    assert res.exit_code == 0
    counted = {line.split(",")[0]: int(line.split(",")[1]) for line in res.output.splitlines()[1:]}
    expected: dict[str, int] = {}
    for s in result.sets:
        expected[s.label] = expected.get(s.label, 0) + 1
    assert counted == expected
    bad = runner.invoke(app, ["query", str(out), "SELECT nope FROM nowhere"])
    assert bad.exit_code == 2 and "error" in bad.output


@pytest.mark.slow
def test_sigkill_during_the_scan_resumes_from_the_last_committed_batch(shared_data, tmp_path):
    import pyarrow.parquet as pq

    from breastlab.core.publish import verify_outputs

    archive = tmp_path / "archive"
    for vendor in ("deident", "nih"):
        link_tree(require(shared_data / "dcmqa" / vendor / "In"), archive / vendor)
    n_files = sum(1 for p in archive.rglob("*") if p.is_file())
    out = tmp_path / "out"
    sort([archive / "deident"], out)  # an earlier, complete set
    before = (out / "series.csv").read_bytes()
    journal = tmp_path / ".out.index"
    env = dict(os.environ, BREASTLAB_INDEX_BATCH="16")
    proc = subprocess.Popen([sys.executable, "-m", "breastlab.cli.main", "sort", str(archive), "--out", str(out),
                             "--no-progress", "-j", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(journal.glob("part-*.parquet"))) < 6 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = list(journal.glob("part-*.parquet"))
    assert len(parts) >= 6, "the run ended before it could be killed mid-scan"
    for part in parts:  # every committed part is whole
        assert pq.read_table(part).num_rows > 0
    assert verify_outputs(out) == [] and (out / "series.csv").read_bytes() == before  # old set intact

    resumed = sort([archive], out)
    assert 0 < resumed.index["files_read"] < n_files - 16 * 4  # committed batches were not read again
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)
    assert not journal.exists()


def test_result_is_built_before_writing_and_each_output_written_once(shared_data, tmp_path, monkeypatch):
    """Fusion fills the SortResult before anything is written; every output file is opened once, and the
    streamed outputs equal the whole-list writers over sets fused all at once (the former path)."""
    from breastlab.core import atomic
    from breastlab.mri import outputs
    from breastlab.seriesmodels import fusion
    from breastlab.phantom.mri import write_mri_phantom
    from test_mri_fusion import constant_model

    monkeypatch.setenv("BREASTLAB_CONFIG", str(tmp_path / "none.toml"))
    root = tmp_path / "ph"
    write_mri_phantom(root, vendors=["SIEMENS", "GE"], n_slices=4, matrix=32, seed=3)
    model = fusion.load_models([constant_model(tmp_path / "m.pt", ["T2WI", "T2WI_FS", "ADC"], "T2WI")])

    opened: list[str] = []
    real_open = atomic.atomic_open

    def counting_open(path, *a, **kw):
        opened.append(Path(path).name)
        return real_open(path, *a, **kw)

    monkeypatch.setattr(atomic, "atomic_open", counting_open)
    result = sort([root], tmp_path / "out", image_models=model)
    assert sorted(n for n in opened if not n.startswith(".")) == sorted(
        [*OUTPUTS, "provenance.json", "manifest.json", "_manifest.json"])  # _manifest.json: index/
    assert result.fusion["models"] and result.image_columns
    assert len({s.study for s in result.sets}) >= 2  # several studies streamed

    # reference: the whole archive at once (sort_records, fuse_sets), written by the whole-list writers
    from breastlab.dicom.scan import scan_paths
    from breastlab.mri.sorter import sort_records

    scan = scan_paths([root], workers=1, progress=False, drop_duplicates=True)
    sets, extra = fusion.fuse_sets(sort_records(scan.records), model)
    cols = fusion.fused_columns(False)
    rows = [outputs.series_row(ls) | {c: extra.get(ls.set_id, {}).get(c) for c in fusion.IMAGE_COLUMNS}
            for ls in sets]
    ref = tmp_path / "ref"
    atomic.write_csv(ref / "series.csv", rows, cols)
    atomic.write_json(ref / "series.json", rows)
    atomic.write_csv(ref / "instances.csv", outputs.instance_rows(sets), outputs.INSTANCE_COLUMNS)
    for name in ("series.csv", "series.json", "instances.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (ref / name).read_bytes(), name
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["image_model_summary"] == result.fusion
    assert prov["config"]["classifier"] == "header rules + image model"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_zip_and_tar_members_are_read_without_unpacking(archive, tmp_path, kind):
    import tarfile
    import zipfile

    folder = archive / "siemens_xa30"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    packed = tmp_path / f"export.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(packed, "w") as zf:
            for p in files:
                zf.write(p, p.relative_to(folder).as_posix())
            zf.writestr("notes/readme.txt", "not dicom")
    else:
        with tarfile.open(packed, "w:gz") as tf:
            for p in files:
                tf.add(p, p.relative_to(folder).as_posix())
    before = {p.name for p in tmp_path.iterdir()}
    got = sort([packed], tmp_path / "from_archive")
    ref = sort([folder], tmp_path / "from_folder")
    assert {p.name for p in tmp_path.iterdir()} - before == {"from_archive", "from_folder", ".from_archive.lock",
                                                             ".from_folder.lock"}  # nothing unpacked
    assert got.n_records == ref.n_records > 0
    assert [(s.label, s.image_set.n_images) for s in got.sets] == [(s.label, s.image_set.n_images) for s in ref.sets]
    members = {r.path for s in got.sets for r in s.image_set.records}
    assert members == {f"{packed}/{p.relative_to(folder).as_posix()}" for p in files} & members
    assert all(m.startswith(f"{packed}/") for m in members)
    if kind == "zip":
        assert any(s.path == f"{packed}/notes/readme.txt" and s.reason == "not-dicom" for s in got.skipped)
    again = sort([packed], tmp_path / "from_archive")  # unchanged archive: nothing read again
    assert again.index["files_read"] == 0 and again.n_records == got.n_records
    same_outputs(tmp_path / "from_archive", sort([packed], tmp_path / "clean").out_dir)
    exported = sort([packed], tmp_path / "with_export", export_dir=tmp_path / "exp")
    assert exported.n_records == 0 and exported.skipped[0].reason == "archive"


@pytest.mark.slow
def test_dask_local_cluster_equals_the_default_engine(archive, tmp_path):
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    ref = sort([archive], tmp_path / "default")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        got = sort([archive], tmp_path / "dask", engine="dask", scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            assert len(client.nthreads()) == 2
    assert got.index["files_read"] == ref.index["files_read"] > 0
    same_outputs(tmp_path / "dask", tmp_path / "default")
    # without --scheduler: a LocalCluster owned by the run, through the command line
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    res = CliRunner().invoke(app, ["sort", str(archive), "--out", str(tmp_path / "local"), "--engine", "dask",
                                   "-j", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    same_outputs(tmp_path / "local", tmp_path / "default")
