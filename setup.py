"""Installs ``gass_modules``: General Audio Source Separation for SpeechBrain.

Two sets of versions, kept apart on purpose (as SpeechBrain, asteroid and lhotse do):

* ``install_requires`` below: the **compatible ranges** a user's environment must satisfy, from
  the oldest version known to work to the next major. ``pip install gass_modules`` into an
  existing SpeechBrain environment that satisfies them installs nothing else.
* ``requirements.txt``: the **exact lock** that ``make`` and CI build (tools/setup_env.sh).

README.md ("Installing into a SpeechBrain environment") says which bounds are tested and which
are declared from the package's own compatibility policy; tests/consistency/test_packaging.py
checks that the lock satisfies the ranges and that every import of the library is declared.

The model cards (``hparams/models/*.yaml``) and the mixer tables (``hparams/mixer/*.yaml``) are
installed as ``gass_modules/hparams/`` (see :mod:`gass_modules.model_folder.cards`): ``package_dir``
maps the
repository's ``hparams/`` folder into the package at build time, so ``hparams/`` stays the one
copy. An editable install reads them from the repository.
"""

import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version() -> str:
    """Reads ``__version__`` from ``gass_modules/__init__.py`` without importing the package.

    Returns
    -------
    str
        The version string, the one source of the package's version.
    """
    tree = ast.parse((HERE / "gass_modules" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("gass_modules/__init__.py does not define __version__")


# Compatible ranges of what the library imports at run time. Floors: torch, torchaudio,
# speechbrain, numpy and scipy are tested at both ends (`make compat`: requirements-compat.txt;
# `make test`: the lock); the others are tested at the lock's version and their floors declared
# from their own compatibility policy (README.md, "Installing into a SpeechBrain environment").
INSTALL_REQUIRES = [
    "torch>=2.6,<3",
    "torchaudio>=2.6,<3",  # must match torch's minor version (torchaudio's own pins do that)
    "speechbrain>=1.0.3,<2",
    "hyperpyyaml>=1.2.2,<2",
    "numpy>=1.26,<3",
    "scipy>=1.11,<2",
    "soundfile>=0.12.1,<1",
    "fast-bss-eval>=0.1.4,<0.2",  # 0.x: a minor release may break the API
    "tqdm>=4.64,<5",
    "PyYAML>=6.0,<7",  # imported directly (safe model loading); hyperpyyaml brings it too
    "ruamel.yaml>=0.17.28,<0.19",  # recipe.py's round-trip trees; ruamel breaks APIs in 0.x minors
    "webdataset>=1.0.2,<2",  # tar shards (gass_modules/dataio/shard*.py, #26)
    "filelock>=3.12,<5",  # the training-folder lock (recipe.py, #27); torch brings it too
]

EXTRAS_REQUIRE = {
    # spectrogram figures: gass-separate --plot, gass_modules.evaluation.plots
    "plots": ["matplotlib>=3.7,<4"],
    # MUSDB18 cSDR/uSDR (gass_modules.evaluation.benchmark_metrics.musdb_csdr): museval's BSS Eval
    # v4
    "musdb": ["museval>=0.4.1,<0.5"],
    # the repository's tests and packaging checks (mido writes the MIDI files the corpus tests
    # parse; the corpus builder itself parses MIDI without it)
    "test": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "build>=1.0", "mido>=1.3,<2"],
    # benchmarks/ (peak memory)
    "bench": ["psutil>=5.9,<8"],
}

setup(
    name="gass_modules",
    version=read_version(),
    description="General Audio Source Separation (GASS) as a SpeechBrain plugin toolkit",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.10",
    packages=find_packages(include=["gass_modules", "gass_modules.*"]) + ["gass_modules.hparams"],
    # the repository's hparams/ folder is installed as gass_modules/hparams (cards and mixer
    # tables; data only, no __init__.py)
    package_dir={"gass_modules.hparams": "hparams"},
    package_data={
        "gass_modules.hparams": ["models/*.yaml", "mixer/*.yaml"],
        # the bundled GASS-mini model folder (gass_modules/model_folder/pretrained/gass_mini, about
        # 2 MB)
        "gass_modules.model_folder.pretrained": ["*/hyperparams.yaml", "*/separator.ckpt",
                                                "*/PROVENANCE.md"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["gass-separate=gass_modules.inference.cli:main"]},
)
