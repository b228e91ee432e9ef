"""Separators bundled with gass, loadable by name (``from_hparams(source="gass-mini")``).

A bundled model is an ordinary model folder (``hyperparams.yaml`` + ``separator.ckpt``, see
``gass_modules.model_folder``) shipped as package data, with a ``PROVENANCE.md`` that says which
recipe, corpus and command trained it and what it scored on held-out data. Nothing is
downloaded. ``tools/bundle_gass_mini.py`` puts a trained run's model folder here.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "DEFAULT_MODEL", "bundled_model_folder", "resolve_model_source"]

# name -> folder under gass_modules/pretrained/
BUNDLED_MODELS = {"gass-mini": "gass_mini"}
DEFAULT_MODEL = "gass-mini"
_HERE = Path(__file__).resolve().parent


def bundled_model_folder(name: str) -> Path:
    """The folder of a bundled model.

    Arguments
    ---------
    name : str
        A bundled model's name (``gass-mini``).

    Returns
    -------
    pathlib.Path
        Its model folder inside the installed package.

    Example
    -------
    >>> bundled_model_folder("gass-mini").name
    'gass_mini'
    >>> bundled_model_folder("nope")
    Traceback (most recent call last):
    ...
    ValueError: no bundled model named 'nope'; bundled: ['gass-mini'] (or pass a model folder path)
    """
    if name not in BUNDLED_MODELS:
        raise ValueError(f"no bundled model named {name!r}; bundled: {sorted(BUNDLED_MODELS)} "
                         "(or pass a model folder path)")
    folder = _HERE / BUNDLED_MODELS[name]
    if not (folder / "separator.ckpt").is_file():
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
        A model folder, or the name of a bundled model (``gass-mini``).

    Returns
    -------
    pathlib.Path
        The folder (not checked further when it is a path).

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
