"""Fixtures shared by the unit, integration and recipe tests.

``demo_corpus_small``: the real-audio demo corpus's small subset (≈2 minutes of speech, music
stems and sound events from Debian packages, every category in every split), built once by
``tools/build_demo_corpus.py`` into ``${GASS_CACHE:-~/.cache/gass}/demo_corpus/small-16000`` and
reused across sessions while its content key holds (a few seconds to build, instant after).
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    """Imports ``tools/<name>.py`` as a module (tools/ is a folder of scripts, not a package).

    Arguments
    ---------
    name : str
        Script name without ``.py``.

    Returns
    -------
    module
        The imported script.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_torch_thread():
    """Runs a test with one intra-op torch thread, as in a dataloader worker (PyTorch sets it
    there). The mixer's resampling convolutions are small: with several threads on a busy CPU
    they run tens of times slower. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tools():
    """``tools("name")`` imports ``tools/name.py`` (see :func:`load_tool`)."""
    return load_tool


@pytest.fixture(scope="session")
def demo_corpus_small():
    """The small demo corpus: ``.root`` (folder) and ``.manifests`` (split -> csv path).

    Manifests are ``gass_modules.dataio.manifest`` csvs (``ID, duration, wav, frames,
    sample_rate, channels, category, group``) with paths as ``$data_root/...``, which
    ``Manifest.from_csv`` resolves against the csv's folder by default (with SpeechBrain's
    ``DynamicItemDataset.from_csv`` pass ``replacements={"data_root": str(corpus.root)}``).
    Fails, naming the packages, when the Debian packages it is built from are missing
    (``make test`` installs them through ``tools/setup_env.sh``).
    """
    builder = load_tool("build_demo_corpus")
    return builder.build("small", log=lambda message: None)
