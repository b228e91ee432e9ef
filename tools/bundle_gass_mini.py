"""Puts a trained GASS-mini run into the package: ``tools/bundle_model.py gass-mini``.

Kept so that the command GASS-mini was bundled with still works::

    .venv/bin/python tools/bundle_gass_mini.py RUN_FOLDER --command "python train.py ..."

is ``tools/bundle_model.py gass-mini RUN_FOLDER --command ...`` (which documents the options).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # tools/ is a folder of scripts
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_model import main as bundle_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Runs ``tools/bundle_model.py gass-mini`` with these arguments.

    Arguments
    ---------
    argv : list of str, optional
        ``RUN_FOLDER --command CMD [--dest DIR] [--device D] [--updates N]``.

    Returns
    -------
    int
        Exit status.
    """
    return bundle_main(["gass-mini", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
