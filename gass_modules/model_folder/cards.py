"""Model cards and mixer tables of the installed package, for hyperpyyaml ``!include:``.

The cards (``hparams/models/<name>.yaml``: one separator at the paper's size) and the mixing
scenario tables (``hparams/mixer/<name>.yaml``) live in the repository's ``hparams/`` folder, the
one copy kept by hand. An installed wheel carries them as ``gass_modules/hparams/`` (setup.py maps
the folder into the package at build time); an editable install or a checkout reads the
repository's. :func:`path` finds a card in either, so a SpeechBrain recipe outside this
repository can include one::

    $ python -m gass_modules.model_folder.cards tdanet_stft
    /.../site-packages/gass_modules/hparams/models/tdanet_stft.yaml

.. code-block:: yaml

    # my_recipe/hparams/train.yaml
    model: !include:/.../site-packages/gass_modules/hparams/models/tdanet_stft.yaml
        num_sources: 2          # any card key can be overridden
        sample_rate: 8000
    separator: !ref <model[separator]>

hyperpyyaml joins a relative ``!include:`` path to the including file's folder, so a card outside
the recipe's tree is named by the absolute path that :func:`path` (or ``python -m
gass_modules.model_folder.cards``) gives.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["KINDS", "folder", "names", "path"]

KINDS = ("models", "mixer")  # sub-folders of hparams/: model cards, mixing scenario tables
_PACKAGE = Path(__file__).resolve().parents[1]  # gass_modules/
_INSTALLED = _PACKAGE / "hparams"  # a wheel's copy (package data)
_CHECKOUT = _PACKAGE.parent / "hparams"  # the repository's folder (checkout, editable install)


def folder() -> Path:
    """The ``hparams`` folder the cards are read from: the installed package's, else the
    repository's (a checkout or an editable install).

    Returns
    -------
    pathlib.Path
        A folder holding ``models/`` and ``mixer/``.

    Example
    -------
    >>> sorted(p.name for p in folder().iterdir() if p.is_dir() and p.name in KINDS)
    ['mixer', 'models']
    """
    if (_INSTALLED / "models").is_dir():
        return _INSTALLED
    # a checkout: hparams/ beside the package, in the repository that setup.py builds
    if (_CHECKOUT / "models").is_dir() and (_CHECKOUT.parent / "setup.py").is_file():
        return _CHECKOUT
    raise FileNotFoundError(f"no model cards in {_INSTALLED} (the install left out the package "
                            "data?); reinstall gass_modules")


def _check_kind(kind: str) -> Path:
    """The sub-folder of ``kind``, or a ValueError naming the kinds."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    return folder() / kind


def names(kind: str = "models") -> list[str]:
    """The names of the cards (``kind="models"``) or mixer tables (``kind="mixer"``).

    Arguments
    ---------
    kind : str
        ``"models"`` (separator cards) or ``"mixer"`` (mixing scenarios).

    Returns
    -------
    list of str
        Sorted names, each usable with :func:`path`.

    Example
    -------
    >>> "tdanet_stft" in names() and "bsrnn" in names()
    True
    >>> names("mixer")
    ['gass']
    """
    return sorted(p.stem for p in _check_kind(kind).glob("*.yaml"))


def path(name: str, kind: str = "models") -> Path:
    """The file of a model card (or a mixer table) for hyperpyyaml's ``!include:``.

    Arguments
    ---------
    name : str
        The card's name, e.g. ``"tdanet_stft"`` (see :func:`names`; a ``.yaml`` suffix is
        accepted).
    kind : str
        ``"models"`` (separator cards) or ``"mixer"`` (mixing scenarios, e.g. ``"gass"``).

    Returns
    -------
    pathlib.Path
        The absolute path of the yaml file.

    Example
    -------
    >>> from hyperpyyaml import load_hyperpyyaml
    >>> card = path("tdanet_stft")
    >>> card.name, card.is_absolute()
    ('tdanet_stft.yaml', True)
    >>> yaml = f"model: !include:{card}\\n    num_sources: 2\\n    num_blocks: 1\\n"
    >>> model = load_hyperpyyaml(yaml)["model"]
    >>> type(model["separator"]).__name__, model["separator"].num_sources
    ('TDANetSTFT', 2)
    >>> path("tdanet")
    Traceback (most recent call last):
    ...
    ValueError: no model card named 'tdanet'; available: ['bs_roformer', ...]
    """
    sub = _check_kind(kind)
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    file = sub / f"{stem}.yaml"
    if "/" in stem or "\\" in stem or not file.is_file():
        what = "model card" if kind == "models" else "mixer table"
        raise ValueError(f"no {what} named {name!r}; available: {names(kind)}")
    return file


def main(argv: list[str] | None = None) -> int:
    """``python -m gass_modules.model_folder.cards [NAME ...] [--kind models|mixer]``: prints the
    path of
    each named card (all cards when none is named), one per line.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0, or 2 for an unknown name (the error names the available ones).

    Example
    -------
    >>> main(["tdanet_stft"])  # doctest: +ELLIPSIS
    /.../hparams/models/tdanet_stft.yaml
    0
    """
    parser = argparse.ArgumentParser(prog="python -m gass_modules.model_folder.cards",
                                     description="Print the paths of gass model cards.")
    parser.add_argument("names", nargs="*", help="card names (default: all)")
    parser.add_argument("--kind", choices=KINDS, default="models")
    args = parser.parse_args(argv)
    try:
        for name in args.names or names(args.kind):
            print(path(name, args.kind))
    except ValueError as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
