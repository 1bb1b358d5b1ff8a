"""Fuzz suite, index damage (issue 18, items 2 and 9): a sorted folder whose header index
and journal are damaged at random, then sorted again.

Fixed seed, time-bounded. Each case damages a fresh copy of one sorted output folder
(truncated, flipped, deleted, swapped, planted, replaced-by-folder or symlinked parts;
missing, garbage or lying manifests; junk in the journal) and sorts the same input into
it. Asserts per case: no exception, outputs equal to a clean run, a clean published
index (every part listed in its manifest), no journal left. Counts are printed (``-s``).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import require
from test_sort_scale import link_tree, same_outputs, sort

SEED = 18
CASES = 30
TIME_BUDGET = 150.0  # seconds for all cases: the suite stops early (and says so) beyond it


def _parts(index: Path) -> list[Path]:
    return sorted(index.glob("part-*.parquet"))


def _flip(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    path.unlink()  # parts are hard links into a finished journal: write a new inode
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def _truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: rng.randrange(len(data))])


def _damages(out: Path, journal: Path) -> dict[str, Callable[[random.Random], None]]:
    index = out / "index"
    manifest = index / "_manifest.json"

    def some_part(rng: random.Random) -> Path:
        return rng.choice(_parts(index))

    def lying_manifest(rng: random.Random) -> None:  # a planted part added to the manifest with a wrong hash
        doc = json.loads(manifest.read_text())
        planted = index / "part-99999999-11111111.parquet"
        shutil.copyfile(some_part(rng), planted)
        doc["parts"].append({"name": planted.name, "bytes": planted.stat().st_size, "sha256": "0" * 64})
        manifest.unlink()
        manifest.write_text(json.dumps(doc))

    def escaping_manifest(rng: random.Random) -> None:  # names that leave the folder
        doc = json.loads(manifest.read_text())
        doc["parts"] += [{"name": "../series.csv", "bytes": 1, "sha256": "0"}, {"name": None}, 7]
        manifest.unlink()
        manifest.write_text(json.dumps(doc))

    def journal_junk(rng: random.Random) -> None:
        journal.mkdir(exist_ok=True)
        shutil.copyfile(some_part(rng), journal / "part-00000000-22222222.parquet")
        (journal / "manifest.jsonl").write_text('{"name": "part-00000000-22222222.parquet", "bytes": 1}\n{torn')
        (journal / "part-00000001-33333333.parquet").mkdir()

    def symlinked_part(rng: random.Random) -> None:
        part = some_part(rng)
        real = out.parent / f"elsewhere-{rng.randrange(1 << 30)}.parquet"
        shutil.copyfile(part, real)
        part.unlink()
        part.symlink_to(real)

    def index_is_a_file(rng: random.Random) -> None:
        shutil.rmtree(index)
        index.write_bytes(b"PAR1 not an index")

    return {
        "flip-part": lambda rng: _flip(some_part(rng), rng),
        "truncate-part": lambda rng: _truncate(some_part(rng), rng),
        "delete-part": lambda rng: some_part(rng).unlink(),
        "part-becomes-folder": lambda rng: (lambda p: (p.unlink(), p.mkdir()))(some_part(rng)),
        "plant-part-copy": lambda rng: shutil.copyfile(some_part(rng), index / "part-99999999-aaaaaaaa.parquet"),
        "plant-folder": lambda rng: (index / "part-99999999-bbbbbbbb.parquet").mkdir(),
        "delete-manifest": lambda rng: manifest.unlink(),
        "garbage-manifest": lambda rng: (manifest.unlink(), manifest.write_bytes(os.urandom(64))),
        "manifest-wrong-shape": lambda rng: (manifest.unlink(), manifest.write_text('{"format": 3, "parts": {}}')),
        "lying-manifest": lying_manifest,
        "escaping-manifest": escaping_manifest,
        "journal-junk": journal_junk,
        "symlinked-part": symlinked_part,
        "index-is-a-file": index_is_a_file,
    }


@pytest.mark.slow
def test_sort_survives_a_damaged_index(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BREASTLAB_INDEX_BATCH", "8")  # several parts to damage
    archive = tmp_path / "archive"
    link_tree(require(shared_data / "dcmqa" / "ge" / "In"), archive / "ge")
    link_tree(require(shared_data / "dcmqa" / "transfer_syntax" / "In"), archive / "ts")
    clean = tmp_path / "clean"
    sort([archive], clean)
    rng = random.Random(SEED)
    counts: dict[str, int] = {}
    failures: list[str] = []
    t0 = time.monotonic()
    tried = 0
    for case in range(CASES):
        if time.monotonic() - t0 > TIME_BUDGET:
            break
        out = tmp_path / f"out{case}"
        shutil.copytree(clean, out, copy_function=shutil.copy2)
        journal = tmp_path / f".out{case}.index"
        damages = _damages(out, journal)
        kinds = sorted(damages)
        kind = kinds[case] if case < len(kinds) else rng.choice(kinds)  # every kind once, then at random
        damages[kind](rng)
        counts[kind] = counts.get(kind, 0) + 1
        tried += 1
        try:
            result = sort([archive], out)
            same_outputs(out, clean)
            listed = {p["name"] for p in json.loads((out / "index" / "_manifest.json").read_text())["parts"]}
            assert listed == {p.name for p in _parts(out / "index")}, "published index differs from its manifest"
            assert not journal.exists(), "journal left behind"
            assert result.n_records > 0
        except Exception as exc:  # noqa: BLE001 - collected, reported below
            failures.append(f"case {case} ({kind}): {type(exc).__name__}: {exc}")
        shutil.rmtree(out, ignore_errors=True)
    print("\nindex fuzz:", json.dumps({"seed": SEED, "cases": tried, "kinds": counts, "failures": len(failures),
                                       "seconds": round(time.monotonic() - t0, 1)}))
    assert tried >= 10, f"only {tried} cases in {TIME_BUDGET} s"
    assert not failures, failures[:5]
