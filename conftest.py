"""pytest configuration shared by the unit, integration and consistency tests and the doctests."""

import os

import pytest
import torch

from tests.doubles import ScaledCopies

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """One torch thread per test process (override with GASS_TEST_THREADS).

    The tests run many small ops, where OpenMP's spinning threads cost more than they give: on a
    busy 2-core machine a 2-thread run of the conformance suite took ~20x the CPU time of a
    1-thread run. Speed targets live in benchmarks/, which set their own thread counts.
    """
    torch.set_num_threads(int(os.environ.get("GASS_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test and doctest starts from the same torch random state (numpy: use Generators)."""
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    """Doctests may use ``torch`` without importing it (as SpeechBrain's do), and the test
    double ``ScaledCopies`` (``tests/doubles.py``, a registered separator that multiplies the
    mixture by a gain per output) where an example needs a separator with closed-form outputs."""
    doctest_namespace["torch"] = torch
    doctest_namespace["ScaledCopies"] = ScaledCopies


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped on a machine without a CUDA GPU (run them with
    ``pytest -m cuda`` on one)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked `cuda`)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
