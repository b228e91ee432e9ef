"""Puts a trained GASS-mini run into the package, with its provenance.

GASS-mini (``recipes/GASS/separation/hparams/gass_mini.yaml``) is the one model shipped inside
gass (``gass_modules/pretrained/gass_mini``, loaded by ``GASSSeparator.from_hparams(source=
"gass-mini")`` and ``gass-separate``'s default). This copies the run's exported model folder
there, checks that it loads safely and is small enough to ship, and writes ``PROVENANCE.md``:
the command, the corpus (its content key, tier and rate), the update count, the parameter count
and the held-out figures of the run's own evaluation (``eval/summary.md``, ``eval/headline.json``).

Usage::

    .venv/bin/python tools/bundle_gass_mini.py RUN_FOLDER --command "python train.py ..."

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "gass_modules" / "pretrained" / "gass_mini"
MAX_BYTES = 10 * 1024 * 1024  # the size a package may carry (developers' guide)
FILES = ("hyperparams.yaml", "separator.ckpt")


def provenance(run: Path, command: str) -> str:
    """The ``PROVENANCE.md`` text of a finished run.

    Arguments
    ---------
    run : pathlib.Path
        The recipe's output folder (``model/``, ``eval/``, ``hyperparams.yaml``).
    command : str
        The command that trained it.

    Returns
    -------
    str
        Markdown text.

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
    """
    headline = json.loads((run / "eval" / "headline.json").read_text())
    summary = (run / "eval" / "summary.md").read_text()
    data_folder = _data_folder(run / "hyperparams.yaml")
    corpus_file = Path(data_folder) / "corpus.json" if data_folder else None
    if corpus_file is not None and corpus_file.is_file():
        corpus = json.loads(corpus_file.read_text())
        corpus_line = (f"GASS-mini corpus (`tools/build_demo_corpus.py`), tier `{corpus['subset']}`"
                       f", {corpus['sample_rate']} Hz, {corpus['minutes']:.0f} min of audio, "
                       f"content key `{corpus['key']}`")
    else:
        corpus_line = f"data folder `{data_folder}` (no corpus.json found there)"
    return "\n".join([
        "# GASS-mini: provenance", "",
        f"Bundled on {datetime.date.today().isoformat()} by `tools/bundle_gass_mini.py` from "
        f"`{run}`.", "",
        f"- command: `{command}`",
        f"- corpus: {corpus_line}",
        f"- training: {headline['updates']} updates (the checkpoint with the lowest validation "
        f"loss, which the recipe evaluates and exports), {headline['parameters']:,} parameters",
        "- evaluation: the recipe's own, on held-out mixtures of the corpus' test split "
        "(speakers, songs and sound files never seen in training), beside the IRM oracle", "",
        summary.strip(), ""])


def _data_folder(hparams_file: Path) -> str | None:
    """The run's ``data_folder`` (read from the saved hparams without building anything)."""
    for line in hparams_file.read_text().splitlines():
        if line.startswith("data_folder:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    """Copies the run's model folder into the package and writes its provenance.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the recipe's output folder")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--dest", type=Path, default=DEST)
    args = parser.parse_args(argv)
    model = args.run / "model"
    missing = [f for f in FILES if not (model / f).is_file()]
    missing += [f"eval/{f}" for f in ("headline.json", "summary.md")
                if not (args.run / "eval" / f).is_file()]
    if missing:
        print(f"bundle_gass_mini: {args.run} is not a finished run: missing {missing}",
              file=sys.stderr)
        return 1
    size = sum((model / f).stat().st_size for f in FILES)
    if size > MAX_BYTES:
        print(f"bundle_gass_mini: the model folder holds {size / 2**20:.1f} MB, more than the "
              f"{MAX_BYTES / 2**20:.0f} MB a bundled model may", file=sys.stderr)
        return 1
    from gass_modules.inference import GASSSeparator  # the safe loader must accept it

    GASSSeparator.from_hparams(source=model, run_opts={"device": "cpu"})
    args.dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model / "separator.ckpt", args.dest / "separator.ckpt")
    # folders exported before issue 16 name the load hook by its old module; ship the current one
    card = (model / "hyperparams.yaml").read_text()
    (args.dest / "hyperparams.yaml").write_text(card.replace(
        "gass_modules.inference.load_separator_checkpoint",
        "gass_modules.model_folder.load_separator_checkpoint"))
    (args.dest / "PROVENANCE.md").write_text(provenance(args.run, args.command))
    GASSSeparator.from_hparams(source=args.dest, run_opts={"device": "cpu"})
    print(f"bundled {size / 2**20:.2f} MB into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
