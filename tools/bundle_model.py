"""Puts a trained GASS run into the package as a bundled model, with its provenance.

The bundled models (:mod:`gass_modules.model_folder.pretrained`: ``gass-mini``, trained on CPU by
``recipes/GASS/separation/hparams/gass_mini.yaml``; ``gass-base``, trained on a lent GPU by
``hparams/gass_base.yaml``) are model folders shipped inside gass and loaded by name
(``GASSSeparator.from_hparams(source="gass-base")``, ``gass-separate --model gass-base``). This
copies a run's exported model folder to ``gass_modules/model_folder/pretrained/<folder>``, checks
that it
loads safely and is small enough to ship, and writes ``PROVENANCE.md``: the command, the corpus
(its content key, tier and rate), the update count, the device, the parameter count and the
held-out figures of the run's own evaluation (``eval/summary.md``, ``eval/headline.json``).

Provenance names things relative to the repository (recipe, yaml, corpus key), never a path of
the machine that trained or bundled the model: the repository root becomes ``.``, the home
folder ``~``, and any other absolute path left in the text stops the bundling with its name.

Usage::

    .venv/bin/python tools/bundle_model.py gass-mini RUN_FOLDER --command "python train.py ..."
    .venv/bin/python tools/bundle_model.py gass-base RUN_FOLDER --command "..." \\
        --device "NVIDIA H100, 4 min" --updates 1500

``RUN_FOLDER`` holds ``model/`` (the exported folder), ``eval/`` (``headline.json``,
``summary.md``) and ``hyperparams.yaml``, as the recipe leaves them (for a run trained elsewhere:
its ``model/`` evaluated here with ``--evaluate_model_folder``; see the recipe's README).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "gass_modules" / "model_folder" / "pretrained"
FILES = ("hyperparams.yaml", "separator.ckpt")
MB = 1024 * 1024
# name -> (title, largest folder a package may carry, recipe yaml): issue 15 (GASS-mini, the
# developers' guide's 10 MB) and issue 24 (GASS-base, 30 MB)
MODELS = {
    "gass-mini": ("GASS-mini", 10 * MB, "recipes/GASS/separation/hparams/gass_mini.yaml"),
    "gass-base": ("GASS-base", 30 * MB, "recipes/GASS/separation/hparams/gass_base.yaml"),
    "gass-mini-causal": ("GASS-mini causal", 10 * MB,
                         "recipes/GASS/separation/hparams/gass_mini_causal.yaml"),
}
# an absolute path: a slash that starts a name and does not follow a word, a dot, a tilde
# (home-relative), another slash or a colon (URLs), a dash or a number ("28/80")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/<>-])/[A-Za-z_.][\w.-]*(?:/[\w.-]*)*")


def portable(text: str, root: Path = ROOT, home: str | None = None) -> str:
    """``text`` with the machine's paths made portable: ``root`` -> ``.``, the home folder -> ``~``.

    Arguments
    ---------
    text : str
        Any text (a command, a provenance file).
    root : pathlib.Path
        The repository root.
    home : str, optional
        The home folder (default: ``~`` expanded).

    Returns
    -------
    str
        The text, relative to the repository and the home folder.

    Example
    -------
    >>> portable("cd /r/x/recipes && ls /home/u/.cache/c", Path("/r/x"), "/home/u")
    'cd ./recipes && ls ~/.cache/c'
    """
    home = home if home is not None else os.path.expanduser("~")
    text = text.replace(str(root) + "/", "./").replace(str(root), ".")
    if home and home != "/":
        text = text.replace(home + "/", "~/").replace(home, "~")
    return text


def absolute_paths(text: str) -> list[str]:
    """The absolute paths written in ``text`` (what a provenance file must not hold).

    Arguments
    ---------
    text : str
        Markdown text.

    Returns
    -------
    list of str
        The paths found, in order.

    Example
    -------
    >>> absolute_paths("from `/work/runs/gass_mini`, 28/80 mixtures, over/under-sep., "
    ...                "~/.cache/gass, https://arxiv.org/abs/2310.00140, 0.1 s/update, /tmp")
    ['/work/runs/gass_mini', '/tmp']
    """
    return ABSOLUTE_PATH.findall(text)


def provenance(run: Path, command: str, name: str = "gass-mini", device: str | None = None,
               updates: int | None = None) -> str:
    """The ``PROVENANCE.md`` text of a finished run, with repository-relative paths only.

    Arguments
    ---------
    run : pathlib.Path
        The recipe's output folder (``model/``, ``eval/``, ``hyperparams.yaml``).
    command : str
        The command that trained it.
    name : str
        The bundled name (``gass-mini``, ``gass-base``).
    device : str, optional
        Where it was trained (e.g. ``"NVIDIA H100 (lent), 4.0 min of training"``).
    updates : int, optional
        Updates of the kept checkpoint (default: the evaluation's ``headline.json``; a model
        folder evaluated apart from its training says 0 there, so pass it).

    Returns
    -------
    str
        Markdown text.

    Raises
    ------
    ValueError
        When the text would name an absolute path of this machine, or the update count is
        unknown.

    Example
    -------
    >>> run = getfixture("tmp_path")
    >>> (run / "eval").mkdir()
    >>> _ = (run / "eval" / "headline.json").write_text('{"updates": 5, "parameters": 7}')
    >>> _ = (run / "eval" / "summary.md").write_text("| a |")
    >>> _ = (run / "hyperparams.yaml").write_text("data_folder: /nowhere\\n")
    >>> text = provenance(run, "python train.py x.yaml")
    >>> "python train.py x.yaml" in text and "5 updates" in text and "corpus.json" in text
    True
    >>> absolute_paths(text)
    []
    """
    if name not in MODELS:
        raise ValueError(f"no bundled model named {name!r}; known: {sorted(MODELS)}")
    title, _, recipe = MODELS[name]
    headline = json.loads((run / "eval" / "headline.json").read_text())
    summary = (run / "eval" / "summary.md").read_text()
    updates = int(headline["updates"]) if updates is None else int(updates)
    if updates <= 0:
        raise ValueError(f"{run / 'eval' / 'headline.json'} records {headline['updates']} "
                         "updates (a model folder evaluated apart from its training); pass "
                         "the run's update count (--updates, from its train log)")
    data_folder = _data_folder(run / "hyperparams.yaml")
    corpus_file = Path(data_folder).expanduser() / "corpus.json" if data_folder else None
    if corpus_file is not None and corpus_file.is_file():
        corpus = json.loads(corpus_file.read_text())
        corpus_line = (f"GASS-mini corpus (`tools/build_demo_corpus.py --subset "
                       f"{corpus['subset']} --sample-rate {corpus['sample_rate']}`), tier "
                       f"`{corpus['subset']}`, {corpus['sample_rate']} Hz, "
                       f"{corpus['minutes']:.0f} min of audio, content key `{corpus['key']}`")
    else:
        where = Path(data_folder).name if data_folder else "none"
        corpus_line = f"data folder `{where}` (no corpus.json found there)"
    lines = [
        f"# {title}: provenance", "",
        f"Bundled on {datetime.date.today().isoformat()} by `tools/bundle_model.py {name}` from "
        f"the run folder `{run.name}` of `{recipe}`.", "",
        f"- command: `{command}`",
        f"- corpus: {corpus_line}",
        f"- training: {updates} updates (the checkpoint with the lowest validation loss, which "
        f"the recipe evaluates and exports), {headline['parameters']:,} parameters"]
    if device:
        lines.append(f"- device: {device}")
    lines += ["- evaluation: the recipe's own, on held-out mixtures of the corpus' test split "
              "(speakers, songs and sound files never seen in training), beside the IRM oracle",
              "", summary.strip(), ""]
    text = portable("\n".join(lines))
    found = absolute_paths(text)
    if found:
        raise ValueError(f"the provenance would name paths of this machine: {found}; write the "
                         "command with paths relative to the repository (e.g. cd "
                         "recipes/GASS/separation && python train.py hparams/...) or to ~")
    return text


def _data_folder(hparams_file: Path) -> str | None:
    """The run's ``data_folder`` (read from the saved hparams without building anything)."""
    if not hparams_file.is_file():
        return None
    for line in hparams_file.read_text().splitlines():
        if line.startswith("data_folder:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    return None


def bundle(name: str, run: Path, command: str, dest: Path | None = None,
           device: str | None = None, updates: int | None = None) -> Path:
    """Copies a finished run's model folder into the package and writes its provenance.

    Arguments
    ---------
    name : str
        The bundled name (``gass-mini``, ``gass-base``).
    run : pathlib.Path
        The recipe's output folder.
    command : str
        The command that trained it.
    dest : pathlib.Path, optional
        Where to write (default: the name's folder under ``gass_modules/model_folder/pretrained``).
    device : str, optional
        Where it was trained (into the provenance).
    updates : int, optional
        Updates of the kept checkpoint (default: the run's ``eval/headline.json``).

    Returns
    -------
    pathlib.Path
        The bundled folder.

    Raises
    ------
    ValueError
        When the run is not finished, too large, or its provenance would name machine paths.
    """
    from gass_modules.inference.separator import GASSSeparator  # the safe loader must accept it
    from gass_modules.model_folder.pretrained import BUNDLED_MODELS

    if name not in MODELS:
        raise ValueError(f"no bundled model named {name!r}; known: {sorted(MODELS)}")
    dest = Path(dest) if dest is not None else PRETRAINED / BUNDLED_MODELS[name]
    model = run / "model"
    missing = [f"model/{f}" for f in FILES if not (model / f).is_file()]
    missing += [f"eval/{f}" for f in ("headline.json", "summary.md")
                if not (run / "eval" / f).is_file()]
    if missing:
        raise ValueError(f"{run} is not a finished run: missing {missing}")
    size = sum((model / f).stat().st_size for f in FILES)
    limit = MODELS[name][1]
    if size > limit:
        raise ValueError(f"the model folder holds {size / MB:.1f} MB, more than the "
                         f"{limit / MB:.0f} MB {name} may")
    GASSSeparator.from_hparams(source=model, run_opts={"device": "cpu"})
    text = provenance(run, command, name, device=device, updates=updates)  # before any copy
    _check_dest(dest, model)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model / "separator.ckpt", dest / "separator.ckpt")
    # folders exported before issue 16 name the load hook by its old module; ship the current one
    card = (model / "hyperparams.yaml").read_text()
    (dest / "hyperparams.yaml").write_text(card.replace(
        "gass_modules.inference.separator.load_separator_checkpoint",
        "gass_modules.model_folder.folder.load_separator_checkpoint"))
    (dest / "PROVENANCE.md").write_text(text)
    GASSSeparator.from_hparams(source=dest, run_opts={"device": "cpu"})
    return dest


def _check_dest(dest: Path, model: Path) -> None:
    """Raises ``ValueError`` unless ``dest`` may receive a bundle: missing, empty, or an
    earlier bundle (it holds ``PROVENANCE.md`` and no other names than a bundle's); never the
    run's own model folder, a file, or a user's folder, whose files would be replaced."""
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"--dest {dest} is a file; name a folder")
    if dest.is_dir() and dest.resolve() == model.resolve():
        raise ValueError(f"--dest {dest} is the run's own model folder; name another folder")
    names = {p.name for p in dest.iterdir()} if dest.is_dir() else set()
    if names and ("PROVENANCE.md" not in names or names - {*FILES, "PROVENANCE.md"}):
        raise ValueError(f"--dest {dest} holds files that no bundling wrote ({sorted(names)}); "
                         "name an empty or new folder, or an earlier bundle's")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``NAME RUN --command CMD [--device D] [--updates N] [--dest DIR]``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status (1: the run cannot be bundled, with the reason on stderr).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(MODELS), help="the bundled model's name")
    parser.add_argument("run", type=Path, help="the recipe's output folder")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--device", default=None, help="where it was trained (provenance)")
    parser.add_argument("--updates", type=int, default=None,
                        help="updates of the kept checkpoint (default: eval/headline.json's)")
    parser.add_argument("--dest", type=Path, default=None,
                        help="output folder (default: gass_modules/model_folder/pretrained/<name>)")
    args = parser.parse_args(argv)
    try:
        dest = bundle(args.name, args.run, args.command, args.dest, args.device, args.updates)
    except (ValueError, FileNotFoundError) as err:
        print(f"bundle_model: {err}", file=sys.stderr)
        return 1
    size = sum((dest / f).stat().st_size for f in FILES)
    print(f"bundled {args.name} ({size / MB:.2f} MB) into {portable(str(dest))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
