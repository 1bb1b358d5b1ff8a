"""The review page in a real browser: headless Chromium loads review.html of a phantom sort,
filters it, takes corrections from the keyboard, exports the truth table, and the export is
compared with the table expected from the sort's own outputs; the table then feeds ``sort --truth``.
Skips with a reason when Chromium, chromium-driver or Selenium is absent (``make system-deps``).
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from breastlab.core.labels import Label
from breastlab.review.page import read_sort, set_images
from breastlab.review.truth import TRUTH_COLUMNS, TruthRow, read_truth, truth_record
from browser_helpers import chromium
from cli_helpers import invoke

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the browser")


def test_review_page_filter_correct_export_round_trip(tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from breastlab.phantom.mri import write_mri_phantom

    exam, out, downloads = tmp_path / "exam", tmp_path / "out", tmp_path / "downloads"
    downloads.mkdir()
    write_mri_phantom(exam, vendors=("GE", "Philips"), n_slices=4, matrix=32)
    invoke(["sort", exam, "--out", out, "--review", "--no-progress", "-j", "1"])
    series, instances = read_sort(out)
    t2 = [s for s in series if s["label"] == Label.T2WI]
    assert t2, "the phantom has T2WI sets"

    with chromium(downloads) as driver:
        driver.get((out / "review.html").as_uri())
        rows = _wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".set[data-set-id]"))
        assert len(rows) == len(series)
        assert not driver.find_elements(By.CSS_SELECTOR, ".set .noimg.thumb"), "every phantom set has a thumbnail"

        # filter: label T2WI shows exactly the T2WI sets
        Select(driver.find_element(By.ID, "f-label")).select_by_value(str(Label.T2WI))
        shown = driver.find_elements(By.CSS_SELECTOR, ".set[data-set-id]")
        assert sorted(e.get_attribute("data-set-id") for e in shown) == sorted(s["set_id"] for s in t2)

        # correct the first T2WI set to T2WI_FS with a note, confirm the next one
        first = shown[0].get_attribute("data-set-id")
        shown[0].click()
        keys = ActionChains(driver)
        keys.send_keys("f").perform()  # T2WI_FS; the selection moves on
        second = driver.find_element(By.CSS_SELECTOR, ".set.selected").get_attribute("data-set-id")
        assert second != first
        ActionChains(driver).send_keys("c").perform()
        ActionChains(driver).send_keys("k").send_keys("k").perform()  # back to the first row
        assert driver.find_element(By.CSS_SELECTOR, ".set.selected").get_attribute("data-set-id") == first
        ActionChains(driver).send_keys("n").perform()
        ActionChains(driver).send_keys("fat sat visible, \"SPAIR\"").perform()
        ActionChains(driver).send_keys("\ue007").perform()  # Enter keeps the note
        states = {e.get_attribute("data-set-id"): e.get_attribute("data-state")
                  for e in driver.find_elements(By.CSS_SELECTOR, ".set[data-set-id]")}
        assert states[first] == "corrected" and states[second] == "confirmed"

        # the review-state filter shows the corrected set only
        Select(driver.find_element(By.ID, "f-label")).select_by_value("all")
        Select(driver.find_element(By.ID, "f-state")).select_by_value("corrected")
        assert [e.get_attribute("data-set-id") for e in driver.find_elements(By.CSS_SELECTOR, ".set[data-set-id]")] \
            == [first]
        Select(driver.find_element(By.ID, "f-state")).select_by_value("all")
        third = driver.find_element(By.CSS_SELECTOR, f'.set[data-set-id]:not([data-set-id="{first}"])'
                                                     f':not([data-set-id="{second}"])')
        third_id = third.get_attribute("data-set-id")
        third.click()
        ActionChains(driver).send_keys("n").send_keys("look again").send_keys("\ue007").perform()
        assert driver.find_element(By.CSS_SELECTOR, f'.set[data-set-id="{third_id}"]').get_attribute("data-state") == "todo"  # a note alone decides nothing
        assert "(2)" in driver.find_element(By.ID, "export").text
        driver.save_screenshot(str(tmp_path / "review.png"))
        driver.find_element(By.ID, "export").click()
        exported = _wait_for(lambda: [p for p in downloads.glob("truth*.csv")])
        time.sleep(0.3)

    assert (tmp_path / "review.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = set_images(instances)
    by_id = {s["set_id"]: s for s in series}

    def expected(set_id: str, label: Label, status: str, note: str) -> dict[str, str]:
        s = by_id[set_id]
        return {k: str(v) for k, v in truth_record(TruthRow(
            set_id=set_id, series_uid=s["series_uid"], images=images[set_id], label=label,
            sorter_label=s["label"], status=status, note=note, study=s["study"],
            series_number=str(s["series_number"]), image_set=str(s["image_set"]))).items()}

    with open(exported[0], newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == TRUTH_COLUMNS
        got = {r["set_id"]: r for r in reader}
    assert got == {first: expected(first, Label.T2WI_FS, "corrected", "fat sat visible, \"SPAIR\""),
                   second: expected(second, Label.T2WI, "confirmed", "")}
    assert len(read_truth(exported[0])) == 2

    # round trip: the exported table as training labels (mri train --truth reads it this way) ...
    from breastlab.seriesmodels.truth_labels import read_truth_data

    labelled = read_truth_data(out, exported[0], [Label.T2WI, Label.T2WI_FS, Label.ADC])
    assert {(i.series_id, i.label) for i in labelled.items} == {(first, Label.T2WI_FS), (second, Label.T2WI)}
    assert all(len(i.files) == by_id[i.series_id]["n_images"] for i in labelled.items)

    # ... and into sort --truth
    res = invoke(["sort", exam, "--out", out, "--truth", exported[0], "--no-progress", "-j", "1"])
    assert "overall" in res.output and "50.0%" in res.output
    agreement = json.loads((out / "agreement.json").read_text())
    assert agreement["overall"]["n"] == 2 and agreement["overall"]["correct"] == 1
    rows = {r["set_id"]: r for r in json.loads((out / "series.json").read_text())}
    assert rows[first]["truth_label"] == Label.T2WI_FS and rows[first]["truth_agrees"] is False
    assert rows[second]["truth_agrees"] is True
