"""The smaller hostile-input items: no traceback from a damaged model or checkpoint, temporaries of a
killed run removed, `--out` that is a file or read-only refused."""
from __future__ import annotations

import json
import os
import pickle

import pytest
from cli_helpers import invoke

torch = pytest.importorskip("torch")

from breastlab.models.files import ModelFileError, load_model, save_model  # noqa: E402
from breastlab.models.registry import build_model  # noqa: E402


def _tampered(tmp_path, **change):
    path = tmp_path / "m.pt"
    save_model(path, build_model("mlp", in_channels=4, num_classes=2, image_size=32))
    obj = torch.load(path, weights_only=True)
    meta = json.loads(obj["meta_json"])
    for k, v in change.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    obj["meta_json"] = json.dumps(meta)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("change, message", [
    ({"name": None}, "no usable 'name'"),
    ({"model_kwargs": {"bogus_setting": 3}}, "cannot build a model"),
    ({"in_channels": "four"}, "cannot build a model"),
    ({"name": "resnet99"}, "cannot build a model"),
    ({"model_kwargs": [1, 2]}, "cannot build a model"),
])
def test_a_damaged_model_file_is_one_line(tmp_path, change, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(_tampered(tmp_path, **change))


def test_predict_with_a_model_missing_its_name_is_one_line(tmp_path):
    path = _tampered(tmp_path, name=None)
    (tmp_path / "in").mkdir()
    res = invoke(["predict", path, tmp_path / "in", "--out", tmp_path / "o"], ok=False)
    assert res.exit_code != 0 and "no usable 'name'" in res.output


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", [b"not a checkpoint", b"", pickle.dumps(_Evil()), None])
def test_a_planted_checkpoint_is_a_one_line_error(tmp_path, content):
    from breastlab.training.checkpoint import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    if content is None:
        torch.save({"something": 1}, path)  # loadable, but no breastlab checkpoint
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_temporaries_of_a_killed_save_are_removed(tmp_path):
    from breastlab.training.checkpoint import save_checkpoint

    left = [tmp_path / ".checkpoint.pt.k1llx9ab.tmp", tmp_path / ".checkpoint.pt.zz0099qq.tmp"]
    for p in left:
        p.write_bytes(b"half a checkpoint")
    other = tmp_path / ".history.csv.abcd.tmp"
    other.write_text("not ours")
    save_checkpoint(tmp_path / "checkpoint.pt", {"format": "breastlab-checkpoint"})
    assert not any(p.exists() for p in left) and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".history.csv.abcd.tmp", "checkpoint.pt"]


def test_a_read_only_empty_out_is_refused_not_replaced(tmp_path, monkeypatch):
    from breastlab.core.publish import OutputError, check_target

    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root may write anywhere: act as a user the folder refuses
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == os.fspath(out)
                                else real(p, mode, **kw))
        with pytest.raises(OutputError, match="not writable"):
            check_target(out)
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("args", [
    ["demo", "--out", "{file}"],
    ["mri", "order-phases", "{tmp}", "--out", "{file}"],
    ["listen", "--store", "{tmp}/st", "--out", "{file}", "--max-seconds", "0.5", "--port", "1"],
    ["listen", "--store", "{file}", "--out", "{tmp}/o", "--max-seconds", "0.5", "--port", "1"],
])
def test_out_pointing_at_a_file_is_one_line(tmp_path, args):
    f = tmp_path / "file"
    f.write_text("x")
    res = invoke([a.replace("{file}", str(f)).replace("{tmp}", str(tmp_path)) for a in args], ok=False)
    assert res.exit_code in (1, 2) and "is not a folder" in res.output, res.output
    assert f.read_text() == "x"
