"""Separators bundled with gass, loadable by name (``from_hparams(source="gass-base")``).

A bundled model is an ordinary model folder (``hyperparams.yaml`` + ``separator.ckpt``, see
``gass_modules.model_folder.folder``) shipped as package data, with a ``PROVENANCE.md`` that says
which
recipe, corpus and command trained it and what it scored on held-out data. Nothing is
downloaded. ``tools/bundle_model.py NAME RUN_FOLDER --command ...`` puts a trained run's model
folder here.

* ``gass-mini`` (``gass_mini``): 0.43 M parameters, 8 kHz, trained on a CPU; always shipped.
* ``gass-base`` (``gass_base``): the 16-kHz model of ``recipes/GASS/separation/hparams/
  gass_base.yaml``, trained on a GPU; shipped once it has been trained and bundled.
* ``gass-mini-causal`` (``gass_mini_causal``): GASS-mini's size built causal, for streaming
  (``gass-separate --stream``), trained on a CPU by ``gass_mini_causal.yaml``.

:func:`default_model` (what ``gass-separate`` uses without ``--model``) is the first model of
:data:`BUNDLED_MODELS` (best first) that is present; ``default_model(causal=True)`` (what
``gass-separate --stream`` uses) the first causal one (:data:`CAUSAL_MODELS`).

This module also says where a model comes from: :func:`choose_model` (the CLI's default, and
names that are both a local folder and a bundled model), :func:`model_source` and
:func:`fetch_model_file` (a folder, bundled name, URL or hub id through SpeechBrain's fetching,
for ``GASSSeparator.from_hparams``).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from speechbrain.utils.fetching import FetchFrom, LocalStrategy, fetch, guess_source

from gass_modules.optional import FetchConfig, fetch_options

__all__ = ["BUNDLED_MODELS", "CAUSAL_MODELS", "DEFAULT_MODEL", "bundled_model_folder",
           "bundled_models_present", "choose_model", "default_model", "download_folder",
           "fetch_model_file", "model_source"]

# name -> folder under gass_modules/model_folder/pretrained/, best first (default_model takes the
# first present)
BUNDLED_MODELS = {"gass-base": "gass_base", "gass-mini": "gass_mini",
                  "gass-mini-causal": "gass_mini_causal"}
DEFAULT_MODEL = "gass-mini"  # the model every install has
CAUSAL_MODELS = ("gass-mini-causal",)  # the bundled models that stream, best first
ROOT = Path(__file__).resolve().parent  # where the bundled folders live
_CHECKPOINT = "separator.ckpt"  # gass_modules.model_folder.folder's names (a row above this module)
_HPARAMS = "hyperparams.yaml"
# how a model gets into the package when it is not there
_HOW_TO_BUNDLE = {
    "gass-base": "it is trained on a GPU by recipes/GASS/separation/hparams/gass_base.yaml "
                 "(tools/device_gass_base.sh) and bundled with `python tools/bundle_model.py "
                 "gass-base RUN_FOLDER --command ...` (recipes/GASS/separation/README.md, "
                 "GASS-base); until then use gass-mini",
    "gass-mini-causal": "it is trained by recipes/GASS/separation/hparams/gass_mini_causal.yaml "
                        "and bundled with `python tools/bundle_model.py gass-mini-causal "
                        "RUN_FOLDER --command ...`; until then stream with a causal model folder "
                        "of your own (--model)",
}


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
    ValueError: no bundled model named 'nope'; bundled: ['gass-base', 'gass-mini', ...
    """
    if name not in BUNDLED_MODELS:
        raise ValueError(f"no bundled model named {name!r}; bundled: {sorted(BUNDLED_MODELS)} "
                         "(or pass a model folder path)")
    folder = ROOT / BUNDLED_MODELS[name]
    if not (folder / _CHECKPOINT).is_file():
        if name in _HOW_TO_BUNDLE:
            raise FileNotFoundError(f"the bundled model {name!r} is not in this install "
                                    f"({folder} holds no {_CHECKPOINT}): "
                                    f"{_HOW_TO_BUNDLE[name]}")
        raise FileNotFoundError(f"the bundled model {name!r} is missing from {folder} (the "
                                "install left out the package data?); reinstall gass_modules or "
                                "pass a model folder path")
    return folder


def bundled_models_present() -> list[str]:
    """The bundled models whose files this install holds, best first.

    Returns
    -------
    list of str
        Names from :data:`BUNDLED_MODELS`, in its order.

    Example
    -------
    >>> "gass-mini" in bundled_models_present()
    True
    """
    return [name for name, folder in BUNDLED_MODELS.items()
            if (ROOT / folder / _CHECKPOINT).is_file()]


def default_model(causal: bool = False) -> str:
    """The model used when none is named: the best bundled model present.

    Arguments
    ---------
    causal : bool
        The best causal one (:data:`CAUSAL_MODELS`; for streaming) instead of the best of the
        others.

    Returns
    -------
    str
        A bundled model's name (:data:`DEFAULT_MODEL`, or the first of :data:`CAUSAL_MODELS`,
        when no other is present: :func:`bundled_model_folder` then says how it gets there).

    Example
    -------
    >>> default_model() in BUNDLED_MODELS, default_model(causal=True) in CAUSAL_MODELS
    (True, True)
    """
    present = [name for name in bundled_models_present() if (name in CAUSAL_MODELS) == causal]
    return present[0] if present else (CAUSAL_MODELS[0] if causal else DEFAULT_MODEL)


def choose_model(source: str | os.PathLike | None, causal: bool = False
                 ) -> tuple[str, str | None]:
    """What to load for a model argument (``--model``), and a note for the user.

    ``None`` (no model named) is the folder of :func:`default_model`, as a path, so that a
    folder named like a bundled model in the working directory never replaces it. A name that is
    both a local folder and a bundled model loads the local folder (SpeechBrain's rule: a local
    path wins over a hub id), with a note saying so; anything else is passed on as it is (a
    folder, a bundled name, a URL or a hub id: ``GASSSeparator.from_hparams`` fetches it).

    Arguments
    ---------
    source : str, os.PathLike or None
        The model the user named, if any.
    causal : bool
        The default is for streaming: :func:`default_model` with ``causal=True``.

    Returns
    -------
    (str, str or None)
        The source to load and a note (None when there is nothing to say).

    Raises
    ------
    FileNotFoundError
        No model named and the default is not in this install (the message says how it gets
        there).

    Example
    -------
    >>> source, note = choose_model(None)
    >>> Path(source) == bundled_model_folder(default_model()), note
    (True, None)
    >>> choose_model("results/x/model")
    ('results/x/model', None)
    """
    if source is None:
        return str(bundled_model_folder(default_model(causal))), None
    name = str(source)
    if name in BUNDLED_MODELS and Path(name).exists():
        return name, (f"using the local folder {Path(name).resolve()}, not the bundled model "
                      f"{name!r} (to load the bundled one, rename or leave that folder, or "
                      f"pass {bundled_model_folder(name)})")
    return name, None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # org/name, as the Hugging Face hub


def model_source(source: str | os.PathLike) -> str:
    """``source`` as SpeechBrain's ``fetch`` should see it (``GASSSeparator.from_hparams``).

    A bundled name becomes its folder (unless a local folder has that name: SpeechBrain's rule,
    a local path wins), a local folder its absolute path, a URL or an ``org/name`` hub id stays
    as it is; anything else (a path that is no folder) is a ``FileNotFoundError`` here, before
    any network lookup. An ``org/name`` whose ``org`` is a local folder is read as a mistyped
    local path (``results/modle``), not as a hub id.

    Arguments
    ---------
    source : str or os.PathLike
        A model folder, a bundled model's name, a URL or a hub id.

    Returns
    -------
    str
        What to hand to ``speechbrain.utils.fetching.fetch``.

    Example
    -------
    >>> model_source("gass-mini") == str(bundled_model_folder("gass-mini"))
    True
    >>> model_source("speechbrain/sepformer-wsj02mix")
    'speechbrain/sepformer-wsj02mix'
    >>> model_source("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: model folder not found: no/such/folder; ...
    >>> import os, tempfile
    >>> here = os.getcwd()
    >>> with tempfile.TemporaryDirectory() as tmp:  # results/ exists: a mistyped local path
    ...     os.chdir(tmp)
    ...     os.mkdir("results")
    ...     try:
    ...         model_source("results/modle")
    ...     except FileNotFoundError as err:
    ...         print(str(err)[:59])
    ...     finally:
    ...         os.chdir(here)
    model folder not found: results/modle (results/ is a local
    """
    name = os.fspath(source)
    if name in BUNDLED_MODELS and not Path(name).is_dir():
        return str(bundled_model_folder(name))
    if Path(name).is_dir():
        return str(Path(name).resolve())
    if name.startswith(("http://", "https://")):
        return name
    if _HUB_ID.match(name) and not Path(name).exists():
        owner = Path(name).parent
        if not owner.is_dir():  # org/name, and no local folder "org": the hub
            return name
        # "results/model" where results/ is a local folder: a mistyped local path, not a hub id
        # (asking the hub would retry for half a minute and then fail with a network error)
        inside = sorted(p.name for p in owner.iterdir() if p.is_dir())[:8]
        raise FileNotFoundError(f"model folder not found: {name} ({owner}/ is a local folder, "
                                f"so this is read as a local path, not a hub id; its folders: "
                                f"{', '.join(inside) or 'none'})")
    raise FileNotFoundError(f"model folder not found: {name}; expected a local folder with "
                            f"{_HPARAMS} and {_CHECKPOINT} (written by "
                            "gass_modules.model_folder.folder.save_model_folder), a "
                            "bundled model's name "
                            f"({', '.join(sorted(BUNDLED_MODELS))}), a URL or a hub id "
                            "(org/name)")


def fetch_model_file(filename: str, source: str, savedir: str | os.PathLike | None,
                     local_strategy: LocalStrategy,
                     fetch_config: FetchConfig | None = None) -> Path:
    """One file of a model folder through SpeechBrain's ``fetch``, with errors that say which
    file and source.

    Arguments
    ---------
    filename : str
        ``hyperparams.yaml`` or ``separator.ckpt``.
    source : str
        A source from :func:`model_source`.
    savedir : str or os.PathLike, optional
        Where SpeechBrain puts the file (a link to a local file, a download); needed for URLs.
    local_strategy : speechbrain.utils.fetching.LocalStrategy
        How a local file reaches ``savedir``.
    fetch_config : speechbrain.utils.fetching.FetchConfig, optional
        SpeechBrain's fetching options (network, cache folder, revision, ...; SpeechBrain 1.1:
        see :func:`gass_modules.optional.fetch_options`).

    Returns
    -------
    pathlib.Path
        The local file.

    Example
    -------
    >>> path = fetch_model_file("separator.ckpt", model_source("gass-mini"), None,
    ...                         LocalStrategy.SYMLINK)
    >>> path == bundled_model_folder("gass-mini") / "separator.ckpt"
    True
    """
    kind, _ = guess_source(source)
    if kind == FetchFrom.URI and savedir is None:
        raise ValueError(f"from_hparams(source={source!r}) downloads the model folder: pass "
                         "savedir=<a local folder> to say where (as in SpeechBrain)")
    try:
        path = Path(fetch(filename, source, savedir=savedir, local_strategy=local_strategy,
                          **fetch_options(fetch_config)))
    except Exception as err:  # SpeechBrain, urllib and huggingface_hub raise their own types
        hint = (f" (read as a hub id: there is no local folder {source} either)"
                if kind == FetchFrom.HUGGING_FACE else "")
        raise FileNotFoundError(f"cannot fetch {filename} from {source}{hint}: "
                                f"{type(err).__name__}: {err}; a model folder holds "
                                f"{_HPARAMS} and {_CHECKPOINT}") from err
    if not path.is_file():
        what = "separator checkpoint" if filename == _CHECKPOINT else filename
        if path.exists():  # a FIFO or /dev/zero would block or never end: not opened
            raise ValueError(f"{what} {path} (fetched from {source}) is not a regular file (a "
                             "folder, FIFO or device); a model folder holds the files "
                             f"{_HPARAMS} and {_CHECKPOINT}")
        raise FileNotFoundError(f"{what} not found: {path} (fetched from {source}); a model "
                                f"folder holds {_HPARAMS} and {_CHECKPOINT}")
    return path


def download_folder(source: str | os.PathLike) -> Path | None:
    """Where a model given by URL is downloaded when the caller names no ``savedir`` (the CLI):
    ``$GASS_CACHE/models/<hash of the URL>`` (``GASS_CACHE`` defaults to ``~/.cache/gass``), so
    a second run finds the files there; None for anything else (loaded in place, or from the hub
    cache).

    Arguments
    ---------
    source : str or os.PathLike
        The model the user named.

    Returns
    -------
    pathlib.Path or None
        The folder for a URL.

    Example
    -------
    >>> download_folder("https://example.org/m").parent.name, download_folder("gass-mini")
    ('models', None)
    """
    import hashlib

    name = os.fspath(source)
    if not name.startswith(("http://", "https://")):
        return None
    cache = Path(os.environ.get("GASS_CACHE", "~/.cache/gass")).expanduser()
    return cache / "models" / hashlib.sha256(name.encode()).hexdigest()[:16]
