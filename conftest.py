"""pytest configuration shared by the unit, integration and consistency tests and the doctests."""

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test and doctest starts from the same torch random state (numpy: use Generators)."""
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    """Doctests may use ``torch`` without importing it (as SpeechBrain's do)."""
    doctest_namespace["torch"] = torch
