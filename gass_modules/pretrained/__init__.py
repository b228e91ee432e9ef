"""Separators bundled with gass, loadable by name (``from_hparams(source="gass-base")``).

A bundled model is an ordinary model folder (``hyperparams.yaml`` + ``separator.ckpt``, see
``gass_modules.model_folder``) shipped as package data, with a ``PROVENANCE.md`` that says which
recipe, corpus and command trained it and what it scored on held-out data. Nothing is
downloaded. ``tools/bundle_model.py NAME RUN_FOLDER --command ...`` puts a trained run's model
folder here.

* ``gass-mini`` (``gass_mini``): 0.43 M parameters, 8 kHz, trained on a CPU; always shipped.
* ``gass-base`` (``gass_base``): the 16-kHz model of ``recipes/GASS/separation/hparams/
  gass_base.yaml``, trained on a GPU; shipped once it has been trained and bundled.

``best_bundled_model()`` (what ``gass-separate`` uses without ``--model``) is the first of
``PREFERENCE`` that is present.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "DEFAULT_MODEL", "PREFERENCE", "best_bundled_model",
           "bundled_model_folder", "is_bundled", "resolve_model_source"]

# name -> folder under gass_modules/pretrained/
BUNDLED_MODELS = {"gass-mini": "gass_mini", "gass-base": "gass_base"}
PREFERENCE = ("gass-base", "gass-mini")  # best first
# how each model gets into the package when it is not there
_HOW_TO_BUNDLE = {
    "gass-base": "it is trained on a GPU by recipes/GASS/separation/hparams/gass_base.yaml "
                 "(tools/device_gass_base.sh) and bundled with `python tools/bundle_model.py "
                 "gass-base RUN_FOLDER --command ...` (recipes/GASS/separation/README.md, "
                 "GASS-base); until then use gass-mini",
}
ROOT = Path(__file__).resolve().parent  # where the bundled folders live


def is_bundled(name: str) -> bool:
    """Whether the bundled model ``name`` is present in this install.

    Arguments
    ---------
    name : str
        A bundled model's name (``gass-mini``, ``gass-base``).

    Returns
    -------
    bool
        True when its folder holds a checkpoint.

    Example
    -------
    >>> is_bundled("gass-mini"), is_bundled("nope")
    (True, False)
    """
    return name in BUNDLED_MODELS and (ROOT / BUNDLED_MODELS[name] / "separator.ckpt").is_file()


def best_bundled_model() -> str:
    """The best bundled model present: ``gass-base`` when bundled, else ``gass-mini``.

    Returns
    -------
    str
        A name of ``PREFERENCE``.

    Example
    -------
    >>> best_bundled_model() in PREFERENCE
    True
    """
    for name in PREFERENCE:
        if is_bundled(name):
            return name
    return PREFERENCE[-1]  # bundled_model_folder says what is missing


def bundled_model_folder(name: str) -> Path:
    """The folder of a bundled model.

    Arguments
    ---------
    name : str
        A bundled model's name (``gass-mini``, ``gass-base``).

    Returns
    -------
    pathlib.Path
        Its model folder inside the installed package.

    Raises
    ------
    ValueError
        When no bundled model has this name.
    FileNotFoundError
        When the model is not in this install (the message says how it gets there).

    Example
    -------
    >>> bundled_model_folder("gass-mini").name
    'gass_mini'
    >>> bundled_model_folder("nope")
    Traceback (most recent call last):
    ...
    ValueError: no bundled model named 'nope'; bundled: ['gass-base', 'gass-mini'] (or pass a ...
    """
    if name not in BUNDLED_MODELS:
        raise ValueError(f"no bundled model named {name!r}; bundled: {sorted(BUNDLED_MODELS)} "
                         "(or pass a model folder path)")
    folder = ROOT / BUNDLED_MODELS[name]
    if not (folder / "separator.ckpt").is_file():
        if name in _HOW_TO_BUNDLE:
            raise FileNotFoundError(f"the bundled model {name!r} is not in this install "
                                    f"({folder} holds no separator.ckpt): "
                                    f"{_HOW_TO_BUNDLE[name]}")
        raise FileNotFoundError(f"the bundled model {name!r} is missing from {folder} (the "
                                "install left out the package data?); reinstall gass_modules or "
                                "pass a model folder path")
    return folder


def resolve_model_source(source: str | os.PathLike) -> Path:
    """A model folder from a path or a bundled model's name.

    A local folder wins over a bundled name, as in SpeechBrain, where a local path wins over a
    hub id.

    Arguments
    ---------
    source : str or os.PathLike
        A model folder, or the name of a bundled model (``gass-mini``, ``gass-base``).

    Returns
    -------
    pathlib.Path
        The folder (not checked further when it is a path).

    Raises
    ------
    FileNotFoundError
        For a bundled name whose model is not in this install.

    Example
    -------
    >>> resolve_model_source("gass-mini") == bundled_model_folder("gass-mini")
    True
    >>> resolve_model_source("results/x/model")
    PosixPath('results/x/model')
    """
    path = Path(source)
    if not path.exists() and str(source) in BUNDLED_MODELS:
        return bundled_model_folder(str(source))
    return path


DEFAULT_MODEL = best_bundled_model()  # in this install; gass-separate's default
