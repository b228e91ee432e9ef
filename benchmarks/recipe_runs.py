"""Running a recipe once per configuration, resumable, with its CPU and wall time (benchmarks).

``bench_data_scaling`` and ``bench_finetune`` train many configurations, each in its own
process, as a user runs a recipe. A configuration whose result file exists is not run again; a
killed one is rerun and resumes from its checkpoints (the recipes' ``Checkpointer``).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path


def run_recipe(cmd: list[str], out: Path, done: Path, cwd: Path,
               env: dict[str, str] | None = None) -> dict:
    """Runs ``cmd`` unless ``done`` exists; returns its costs (also kept in ``out/costs.json``).

    The CPU time is the process's own and its reaped children's (``os.wait4``), so runs started
    side by side are each charged their own work; the load average at the start is recorded.

    Arguments
    ---------
    cmd : list of str
        The command (a recipe's ``train.py`` with its hparams and overrides).
    out : pathlib.Path
        The run's output folder; ``<out>.log`` beside it gets stdout and stderr.
    done : pathlib.Path
        The file the finished run leaves (e.g. ``<out>/eval/summary.md``).
    cwd : pathlib.Path
        Working directory.
    env : dict, optional
        Environment (default: this process's).

    Returns
    -------
    dict
        ``cpu_minutes``, ``wall_minutes``, ``load``.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> cmd = ["sh", "-c", f"mkdir -p {tmp}/run && touch {tmp}/run/done"]
    >>> costs = run_recipe(cmd, tmp / "run", tmp / "run" / "done", tmp)
    >>> sorted(costs), run_recipe(["false"], tmp / "run", tmp / "run" / "done", tmp) == costs
    (['cpu_minutes', 'load', 'wall_minutes'], True)
    """
    costs = out / "costs.json"
    if done.is_file() and costs.is_file():
        return json.loads(costs.read_text())
    load = os.getloadavg()[0]
    t0 = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.log", "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not done.is_file():
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}); see "
                           f"{out.parent / (out.name + '.log')}")
    record = {"cpu_minutes": (usage.ru_utime + usage.ru_stime) / 60,
              "wall_minutes": (time.time() - t0) / 60, "load": load}
    out.mkdir(parents=True, exist_ok=True)
    costs.write_text(json.dumps(record))
    return record


def fmt(value: float | None, digits: int = 2) -> str:
    """A table cell: the value rounded, empty when missing or not finite.

    Arguments
    ---------
    value : float, optional
        The number.
    digits : int
        Decimals.

    Returns
    -------
    str
        The cell text.

    Example
    -------
    >>> fmt(3.14159), fmt(None), fmt(float("nan")), fmt(2.0, 0)
    ('3.14', '', '', '2')
    """
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
