"""The examples in the docstrings of the public entry points run as written (doctest).

Each module below must hold at least one example, and every example must pass. They are
quick and offline (a 4-slice phantom at most); add a module here when you give it one.
"""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "breastlab.core.labels",  # Label
    "breastlab.core.privacy",  # hashed_id
    "breastlab.dicom.times",
    "breastlab.mri.sorter",  # sort_exam
    "breastlab.mri.features",  # summarize
    "breastlab.mri.names",
    "breastlab.mri.rules",  # the rule table
    "breastlab.models.registry",  # build_model
    "breastlab.multiview.cases",  # assemble_cases
    "breastlab.core.vocab",  # option vocabularies
    "breastlab.training.config",  # FourViewConfig
    "breastlab.seriesmodels.train_config",  # MRITrainConfig
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, one_torch_thread) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
