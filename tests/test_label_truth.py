"""The label truth table: every image set of every shared-data folder and phantom (issue 17).

``tests/label_truth.csv`` gives, per folder, the expected label of each image set, keyed by
series number, SeriesDescription and the ``split`` that separated it from its series, with
how many such sets and images there are, and why (ImageType, sequence, vendor notes). The
rows were written from what each series is, not from the sorter's output.

Each folder is sorted and every difference is reported: a wrong label, a wrong count, a set
with no row (reported by name, never passed over), a row with no set. A folder absent here
skips; a shared folder with no rows (new data) skips with the reason.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from fieldmap_fixture import write_fieldmap_exports

from breastlab.core.settings import data_root
from breastlab.mri.sorter import sort_exam

TABLE = Path(__file__).with_name("label_truth.csv")
PHANTOM_VENDORS = ("SIEMENS", "GE", "PHILIPS")
DATA = data_root()
#: shared folders that hold no MRI DICOM: nothing for the sorter to label
NOT_MRI = {"busi": "breast ultrasound PNG images", "breastmnist": "a NumPy archive of 28x28 images"}
Key = tuple[str, str, str]  # series number, SeriesDescription, split


def _rows() -> dict[str, dict[Key, dict[str, str]]]:
    out: dict[str, dict[Key, dict[str, str]]] = {}
    with TABLE.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["series_number"], row["series_description"], row["split"])
            assert key not in out.setdefault(row["folder"], {}), f"duplicate row {row['folder']} {key}"
            out[row["folder"]][key] = row
    return out


ROWS = _rows()


def _shared_folders() -> list[str]:
    """Every folder of the shared data: each dcmqa subfolder, every other top-level folder."""
    if not DATA.is_dir():
        return []
    names = []
    for child in sorted(p for p in DATA.iterdir() if p.is_dir()):
        if child.name == "dcmqa":
            names += [f"dcmqa/{p.name}" for p in sorted(child.iterdir()) if p.is_dir()]
        else:
            names.append(child.name)
    return names


FOLDERS = sorted(set(_shared_folders()) | set(ROWS))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from breastlab.phantom.mri import write_mri_phantom

    root = tmp_path_factory.mktemp("truth")
    write_mri_phantom(root / "phantom", vendors=PHANTOM_VENDORS, n_slices=4, matrix=32)
    write_fieldmap_exports(root / "fieldmaps")
    return root


def _path(folder: str, generated: Path) -> Path:
    if folder.startswith("phantom:"):
        return generated / "phantom" / folder.split(":", 1)[1]
    if folder == "fixture:fieldmaps":
        return generated / "fieldmaps"
    return DATA / folder


def differences(expected: dict[Key, dict[str, str]], result) -> list[str]:  # noqa: ANN001 - SortResult
    """Every difference between the table rows of one folder and its sorted image sets."""
    found: dict[Key, list] = {}
    for s in result.sets:
        key = (str(s.image_set.series_number), s.summary.series_description or "", s.image_set.split)
        found.setdefault(key, []).append(s)
    problems = []
    for key, sets in sorted(found.items()):
        row = expected.get(key)
        what = f"series {key[0]} {key[1]!r} split {key[2]!r}"
        if row is None:
            labels = Counter(str(s.label) for s in sets)
            problems.append(f"unknown set (no row): {what}: {dict(labels)} ({sets[0].classification.evidence})")
            continue
        for s in sets:
            if s.label != row["label"]:
                problems.append(f"{what}: {s.label} ({s.classification.rule}: {s.classification.evidence}), "
                                f"expected {row['label']} ({row['why']})")
        if len(sets) != int(row["n_sets"]):
            problems.append(f"{what}: {len(sets)} sets, expected {row['n_sets']}")
        sizes = sorted({s.image_set.n_images for s in sets})
        if sizes != [int(row["n_images"])]:
            problems.append(f"{what}: {sizes} images, expected {row['n_images']}")
    for key in sorted(set(expected) - set(found)):
        problems.append(f"row with no set: series {key[0]} {key[1]!r} split {key[2]!r}")
    return problems


@pytest.mark.parametrize("folder", FOLDERS)
def test_labels_match_the_truth_table(folder: str, generated: Path) -> None:
    if folder in NOT_MRI:
        pytest.skip(f"{folder}: {NOT_MRI[folder]}, not MRI DICOM")
    expected = ROWS.get(folder)
    if not expected:
        pytest.skip(f"{folder}: no rows in {TABLE.name} (a new shared folder? add its rows)")
    path = _path(folder, generated)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    result = sort_exam([path], workers=1, progress=False)
    problems = differences(expected, result)
    assert not problems, f"{folder}: {len(problems)} difference(s):\n" + "\n".join(problems)


def test_an_unknown_set_is_reported_not_passed_over(generated: Path) -> None:
    rows = dict(ROWS["fixture:fieldmaps"])
    dropped = next(k for k in rows if k[0] == "8")
    del rows[dropped]
    result = sort_exam([generated / "fieldmaps"], workers=1, progress=False)
    problems = differences(rows, result)
    assert len(problems) == 1 and problems[0].startswith("unknown set (no row): series 8")
