"""`--convert` never shares a folder with `--out`/`--export`, and a padded file cannot make it crawl."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import invoke

from breastlab.phantom.mri import write_mri_phantom


@pytest.fixture(scope="module")
def exam(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    write_mri_phantom(root, matrix=32, n_slices=8)
    return root / "GE"


@pytest.mark.parametrize("convert, export", [
    ("{out}", None), ("{out}/nifti", None), ("{tmp}", None), ("{tmp}/exp", "{tmp}/exp"),
    ("{tmp}/exp/nifti", "{tmp}/exp"), ("{tmp}/c", "{tmp}/c/exp"),
])
def test_convert_must_not_share_a_folder_with_out_or_export(exam, tmp_path, convert, export):
    pytest.importorskip("nibabel")
    tmp = tmp_path / "work"
    tmp.mkdir()
    out = tmp / "sorted"
    fill = {"{out}": str(out), "{tmp}": str(tmp)}

    def sub(text: str) -> str:
        for k, v in fill.items():
            text = text.replace(k, v)
        return text

    args = ["sort", exam, "--out", out, "--convert", sub(convert), "--no-progress"]
    if export:
        args += ["--export", sub(export)]
    before = sorted(p.name for p in tmp.iterdir())
    res = invoke(args, ok=False)
    assert res.exit_code == 2 and "must be separate folders" in " ".join(res.output.split()), res.output
    assert sorted(p.name for p in tmp.iterdir()) == before  # refused before anything is written


def test_a_file_padded_far_past_its_image_is_not_staged(exam, tmp_path):
    from breastlab.convert.staging import stage_records
    from breastlab.dicom.headers import read_records

    src = sorted(p for p in exam.rglob("*") if p.is_file() and p.suffix != ".csv")[0]
    padded = tmp_path / "padded.dcm"
    shutil.copyfile(src, padded)
    with open(padded, "ab") as fh:
        fh.truncate(padded.stat().st_size + (96 << 20))  # a valid image, then 96 MiB of zeros (sparse)
    records = read_records(str(padded))
    assert isinstance(records, list) and records  # the sort reads it
    with pytest.raises(ValueError, match="trailing data"):
        stage_records(records, tmp_path / "stage")
    ok = read_records(str(src))
    assert stage_records(ok, tmp_path / "stage2")  # an ordinary file is staged
