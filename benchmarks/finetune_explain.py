"""Why a pre-trained start helps one downstream task and not another (``bench_finetune --explain``).

Three measurements on a finished ``bench_finetune`` folder, none of which trains anything:

* :func:`output_slots`: the pre-trained model at update 0 on a task's mixtures. GASS models are
  trained with PIT, so which output carries which source is arbitrary; a fixed-order task
  (output ``k`` = stem ``k``, the DnR recipe's loss) needs it fixed. For each stem: on which
  output the PIT matching puts it, mixture by mixture, and the fixed-order against the PIT
  loss of the start (their gap is what the start loses only because of its output order);
* :func:`learning_curves`: the validation loss and the validation SI-SNRi (PIT-aligned, as
  ``SeparationBrain`` logs them every epoch) of each run, fine-tuned against scratch;
* :func:`weight_movement`: how far fine-tuning moved each module from the pre-trained weights,
  relative to their norm, beside the distance of a scratch model's weights from them (what an
  unrelated solution is).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gass_modules.dataio.benchmark_sets import load_benchmark_set
from gass_modules.losses import best_permutation, fixed_order_log_mse, pairwise_log_mse, pit_log_mse
from gass_modules.metrics import active_sources, align_estimates, si_snri

LOG_LINE = re.compile(r"epoch: (\d+),.*valid loss: ([-\d.e+]+), valid si_snri: ([-\d.e+na]+)")


def output_slots(separator: torch.nn.Module, csv_path: Path, audio_root: Path, num_stems: int,
                sample_rate: int, batch_size: int = 20) -> dict:
    """The pre-trained separator's output order and loss on a task's mixtures, before training.

    Arguments
    ---------
    separator : torch.nn.Module
        The pre-trained separator (``[B, T]`` -> ``[B, T, S]``, ``S = separator.num_sources``).
    csv_path : pathlib.Path
        A task manifest (``bench_finetune``'s ``data/<task>/manifests/<split>.csv``).
    audio_root : pathlib.Path
        Its ``$data_root``.
    num_stems : int
        The task's stems (the first slots of the manifest, in order).
    sample_rate : int
        The separator's rate (the mixtures are resampled to it).
    batch_size : int
        Mixtures per forward pass.

    Returns
    -------
    dict
        ``slots`` (``[num_stems, S]`` counts: stem ``k`` matched to output ``j``, as PIT
        matches it), ``majority`` (per stem, the share of mixtures on its most frequent
        output), ``fixed_loss`` and ``pit_loss`` (mean thresholded log-MSE in output order and
        under the best permutation, the surplus outputs against silence), ``si_snri`` (the
        mean PIT-aligned SI-SNRi of the stems, as ``SeparationBrain`` validates), ``mixtures``.

    Example
    -------
    >>> import soundfile as sf
    >>> from gass_modules.dataio.benchmarks import BenchmarkExample, write_manifests
    >>> tmp = getfixture("tmp_path")
    >>> g = torch.Generator().manual_seed(0)
    >>> examples = []
    >>> for i in range(4):
    ...     stems = torch.randn(2, 800, generator=g)
    ...     for name, wav in (("mix", stems.sum(0)), ("a", stems[0]), ("b", stems[1])):
    ...         sf.write(tmp / f"{i}{name}.wav", wav.numpy(), 8000)
    ...     examples.append(BenchmarkExample(f"m{i}", tmp / f"{i}mix.wav",
    ...                     (tmp / f"{i}a.wav", tmp / f"{i}b.wav"), ("a", "b")))
    >>> _ = write_manifests("toy", {"test": examples}, tmp / "m", tmp, 2, {}, [])
    >>> class Swapped(torch.nn.Module):  # stem b on output 0, stem a on output 2
    ...     num_sources = 3
    ...     def forward(self, mix):
    ...         return torch.stack([self.refs[..., 1], torch.zeros_like(mix),
    ...                             self.refs[..., 0]], dim=-1)
    >>> sets = load_benchmark_set(tmp / "m" / "test.csv", 2, 8000,
    ...                           replacements={"data_root": str(tmp)})
    >>> model = Swapped()
    >>> model.refs = torch.stack([sets[i]["targets"] for i in range(4)])  # [4, T, 2]
    >>> out = output_slots(model, tmp / "m" / "test.csv", tmp, 2, 8000, batch_size=4)
    >>> out["slots"].tolist(), out["majority"].tolist()
    ([[0, 0, 4], [4, 0, 0]], [1.0, 1.0])
    >>> round(out["fixed_loss"] - out["pit_loss"], 1)  # perfect up to the order: a large gap
    27.4
    """
    outputs = int(separator.num_sources)
    if num_stems > outputs:
        raise ValueError(f"the task has {num_stems} stems but the separator {outputs} outputs")
    data = load_benchmark_set(csv_path, outputs, sample_rate,
                              replacements={"data_root": str(audio_root)})
    slots = np.zeros((num_stems, outputs), dtype=int)
    fixed, pit, improvement = [], [], []
    for first in range(0, len(data), batch_size):
        items = [data[i] for i in range(first, min(first + batch_size, len(data)))]
        length = min(int(it["mix"].shape[0]) for it in items)
        mix = torch.stack([it["mix"][:length] for it in items])  # [B, T]
        targets = torch.stack([it["targets"][:length] for it in items])  # [B, T, S]
        with torch.no_grad():
            estimates = separator(mix)[:, :length]  # [B, T, S]
        perm = best_permutation(pairwise_log_mse(targets, estimates, mix))  # [B, S]
        for k in range(num_stems):
            slots[k] += np.bincount(perm[:, k].numpy(), minlength=outputs)
        fixed += fixed_order_log_mse(targets, estimates, mix).tolist()
        pit += pit_log_mse(targets, estimates, mix).tolist()
        # the validation SI-SNRi of SeparationBrain: PIT-aligned, active sources of 2+ source
        # mixtures (the tasks' mixtures all have 2+)
        gain = si_snri(targets, align_estimates(targets, estimates), mix)  # [B, S]
        improvement += gain[active_sources(targets)].tolist()
    return {"slots": slots, "majority": slots.max(1) / slots.sum(1),
            "fixed_loss": float(np.mean(fixed)), "pit_loss": float(np.mean(pit)),
            "si_snri": float(np.mean(improvement)), "mixtures": len(data)}


def learning_curves(runs: Path, task: str, modes: Sequence[str] = ("scratch", "finetuned"),
                    updates_per_epoch: int = 100) -> dict[str, dict[int, np.ndarray]]:
    """The per-epoch validation loss and SI-SNRi of a task's runs, by mode and update.

    Arguments
    ---------
    runs : pathlib.Path
        ``bench_finetune``'s ``<out>/runs`` (``<task>-<mode>-seed<seed>/train_log.txt``; runs
        with another budget, ``...-<n>u``, are left out).
    task : str
        The task name.
    modes : sequence of str
        Modes to read.
    updates_per_epoch : int
        Updates in one epoch (training mixtures / batch size).

    Returns
    -------
    dict
        ``{mode: {updates: [seeds, 2] array of (valid loss, valid SI-SNRi)}}``, the seeds in
        sorted order, updates present in every seed's log only.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> for seed, loss in ((1, 9.0), (2, 11.0)):
    ...     run = tmp / f"music-scratch-seed{seed}"
    ...     run.mkdir()
    ...     _ = (run / "train_log.txt").write_text(
    ...         f"epoch: 1, lr: 1e-3 - train loss: 5, train skipped: 0 - valid loss: {loss}, "
    ...         "valid si_snri: 2.5\\n")
    >>> curves = learning_curves(tmp, "music", ["scratch"])
    >>> curves["scratch"][100].mean(0).tolist()
    [10.0, 2.5]
    """
    out: dict[str, dict[int, np.ndarray]] = {}
    for mode in modes:
        per_seed = []
        for log in sorted(runs.glob(f"{task}-{mode}-seed*/train_log.txt")):
            if not re.fullmatch(rf"{task}-{mode}-seed\d+", log.parent.name):
                continue
            rows = {}
            for match in LOG_LINE.finditer(log.read_text()):
                rows[int(match[1]) * updates_per_epoch] = (float(match[2]), float(match[3]))
            per_seed.append(rows)
        common = sorted(set.intersection(*(set(r) for r in per_seed))) if per_seed else []
        out[mode] = {u: np.array([r[u] for r in per_seed]) for u in common}
    return out


def _groups(state: dict[str, torch.Tensor], depth: int = 2) -> dict[str, list[str]]:
    """Tensor names grouped by their first ``depth`` name components (``masker.block``)."""
    groups: dict[str, list[str]] = {}
    for name, value in state.items():
        if torch.is_floating_point(value):
            groups.setdefault(".".join(name.split(".")[:depth]), []).append(name)
    return groups


def weight_movement(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor]
                    ) -> dict[str, float]:
    """Relative L2 distance ``‖w_end − w_start‖ / ‖w_start‖`` per module and over all.

    Only tensors present in both with the same shape count (a scratch model with fewer outputs
    leaves its output layer out).

    Arguments
    ---------
    start : dict
        State dict at the start (the pre-trained weights).
    end : dict
        State dict at the end.

    Returns
    -------
    dict
        Module group (first two name components) -> relative distance; ``all`` for the whole.

    Example
    -------
    >>> a = {"enc.w": torch.ones(4), "mask.w": torch.ones(2), "mask.b": torch.ones(3)}
    >>> b = {"enc.w": torch.ones(4), "mask.w": 2 * torch.ones(2), "mask.b": torch.ones(2)}
    >>> weight_movement(a, b)
    {'enc.w': 0.0, 'mask.w': 1.0, 'all': 0.5773502691896257}
    """
    shared = {n: v for n, v in start.items()
              if n in end and end[n].shape == v.shape and torch.is_floating_point(v)}
    out, total = {}, [0.0, 0.0]
    for group, names in _groups(shared).items():
        diff = sum(float((end[n].double() - shared[n].double()).square().sum()) for n in names)
        norm = sum(float(shared[n].double().square().sum()) for n in names)
        out[group] = (diff / norm) ** 0.5 if norm > 0 else float("nan")
        total[0] += diff
        total[1] += norm
    out["all"] = (total[0] / total[1]) ** 0.5 if total[1] > 0 else float("nan")
    return out


def reorder_outputs(folder: Path, order: Sequence[int], dest: Path) -> Path:
    """A copy of a model folder whose output ``k`` is the source's output ``order[k]``.

    ``Separator.permute_outputs`` renumbers the output layer's rows per source, which changes
    nothing else.

    Arguments
    ---------
    folder : pathlib.Path
        A model folder (``hyperparams.yaml``, ``separator.ckpt``).
    order : sequence of int
        A permutation of the outputs.
    dest : pathlib.Path
        The new folder (created; its files replaced).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Example
    -------
    >>> from gass_modules.inference.separator import GASSSeparator
    >>> from gass_modules.model_folder.pretrained import bundled_model_folder
    >>> src = bundled_model_folder("gass-mini")
    >>> new = reorder_outputs(src, [2, 1, 3, 0], getfixture("tmp_path") / "ordered")
    >>> mix = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    >>> a, b = (GASSSeparator.from_hparams(source=str(f)).mods.separator.eval()
    ...         for f in (src, new))
    >>> with torch.no_grad():
    ...     torch.allclose(a(mix)[..., [2, 1, 3, 0]], b(mix), atol=1e-6)
    True
    >>> reorder_outputs(src, [0, 0, 1, 2], getfixture("tmp_path") / "bad")
    Traceback (most recent call last):
    ...
    ValueError: order must be a permutation of 0..3 (one entry per output), got [0, 0, 1, 2]
    """
    import shutil

    separator = load_separator(folder)
    separator.permute_outputs(order)  # the output layer's rows, per source (the lobe knows how)
    dest.mkdir(parents=True, exist_ok=True)
    for item in Path(folder).iterdir():
        if item.is_file() and item.name != "separator.ckpt":
            shutil.copy(item, dest / item.name)
    torch.save(separator.state_dict(), dest / "separator.ckpt")
    return dest


def load_separator(folder: Path) -> torch.nn.Module:
    """The separator of a model folder, in eval mode.

    Arguments
    ---------
    folder : pathlib.Path
        A model folder (``hyperparams.yaml``, ``separator.ckpt``).

    Returns
    -------
    torch.nn.Module
        Its separator (``[B, T]`` -> ``[B, T, S]``).

    Example
    -------
    >>> from gass_modules.model_folder.pretrained import bundled_model_folder
    >>> sep = load_separator(bundled_model_folder("gass-mini"))
    >>> sep.num_sources, sep.training
    (4, False)
    """
    from gass_modules.inference.separator import GASSSeparator

    return GASSSeparator.from_hparams(source=str(folder)).mods.separator.eval()


def _mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` (sample std over seeds; the mean alone for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return f"{values.mean():.2f}" if len(values) else ""
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def explain(out: Path, tasks: dict[str, tuple[int, bool]], pretrained: Path,
            sample_rate: int, updates_per_epoch: int) -> str:
    """The three measurements on a ``bench_finetune`` folder, as markdown tables.

    Arguments
    ---------
    out : pathlib.Path
        The bench's ``--out`` (``data/<task>/manifests``, ``runs/<task>-<mode>-seed<s>``).
    tasks : dict
        Task name -> (number of stems, whether its loss is fixed-order). The output order is
        measured for the fixed-order tasks only (PIT tasks take any order).
    pretrained : pathlib.Path
        The pre-trained model folder the fine-tuned runs started from.
    sample_rate : int
        The tasks' and the model's rate.
    updates_per_epoch : int
        Updates in one epoch of the runs.

    Returns
    -------
    str
        Markdown: output order, learning curves, weight movement.

    Example
    -------
    >>> from gass_modules.model_folder.pretrained import bundled_model_folder
    >>> tmp = getfixture("tmp_path")
    >>> run = tmp / "runs" / "speech-finetuned-seed1"
    >>> (run / "model").mkdir(parents=True)
    >>> state = torch.load(bundled_model_folder("gass-mini") / "separator.ckpt")
    >>> state["masker.mask.1.bias"] = state["masker.mask.1.bias"] + 1.0  # moved by "training"
    >>> torch.save(state, run / "model" / "separator.ckpt")
    >>> report = explain(tmp, {"speech": (2, False)}, bundled_model_folder("gass-mini"), 8000,
    ...                  100)
    >>> row = [r for r in report.splitlines() if r.startswith("| speech | finetuned")][0]
    >>> row.split(" | ")[2:5]  # encoder, norm, bottleneck unchanged
    ['0.00', '0.00', '0.00']
    """
    runs = out / "runs"
    lines = ["#### Output order (fixed-order tasks): stem k matched to output j by PIT, "
             "mixture by mixture", "",
             "| task | model | split | mixtures | stem -> output counts | on the stem's most "
             "frequent output | loss in output order | loss under PIT | gap dB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, (stems, fixed) in tasks.items():
        if not fixed:
            continue
        manifests, audio = out / "data" / task / "manifests", out / "data" / task / "audio"
        models = [("pre-trained (update 0)", pretrained, "train"),
                  ("pre-trained (update 0)", pretrained, "test")]
        reordered = out / "pretrained-ordered" / task  # bench_finetune --ordered-start
        if (reordered / "separator.ckpt").is_file():
            models.append(("pre-trained, outputs reordered (update 0)", reordered, "train"))
        for mode in ("finetuned", "finetuned_ordered", "scratch"):
            models += [(f"{mode} {p.parent.name.rsplit('seed', 1)[1]} (end)", p, "test")
                       for p in sorted(runs.glob(f"{task}-{mode}-seed*/model"))
                       if re.fullmatch(rf"{task}-{mode}-seed\d+", p.parent.name)]
        for name, folder, split in models:
            r = output_slots(load_separator(folder), manifests / f"{split}.csv", audio, stems,
                             sample_rate)
            counts = "; ".join("/".join(str(c) for c in row) for row in r["slots"])
            share = "/".join(f"{100 * m:.0f}%" for m in r["majority"])
            lines.append(f"| {task} | {name} | {split} | {r['mixtures']} | {counts} | {share} | "
                         f"{r['fixed_loss']:.2f} | {r['pit_loss']:.2f} | "
                         f"{r['fixed_loss'] - r['pit_loss']:.2f} |")
    lines += ["", "#### Learning curves: validation SI-SNRi (PIT-aligned, dB; mean ± std over "
              "seeds) after each epoch; update 0 of the fine-tuned runs: the pre-trained model "
              "on the validation mixtures", ""]
    for task, (stems, _) in tasks.items():
        curves = learning_curves(runs, task, ("scratch", "finetuned", "finetuned_ordered"),
                                 updates_per_epoch)
        if not any(curves.values()):
            continue
        start = output_slots(load_separator(pretrained), out / "data" / task / "manifests" /
                             "valid.csv", out / "data" / task / "audio", stems, sample_rate)
        for mode in ("finetuned", "finetuned_ordered"):  # the same start, up to the order
            if curves.get(mode):
                seeds = len(next(iter(curves[mode].values())))
                curves[mode][0] = np.array([[start["pit_loss"], start["si_snri"]]] * seeds)
        steps = sorted({u for c in curves.values() for u in c})
        lines += [f"| {task} | seeds | " + " | ".join(f"{u} upd." for u in steps) + " |",
                  "|---|---|" + "---|" * len(steps)]
        for mode, curve in curves.items():
            if curve:
                seeds = len(next(iter(curve.values())))
                lines.append(f"| {mode} | {seeds} | " + " | ".join(
                    _mean_std(curve[u][:, 1]) if u in curve else "" for u in steps) + " |")
        lines.append("")
    lines += ["#### Weight movement: ||w_end - w_start|| / ||w_start|| per module, w_start the "
              "weights the run started from (finetuned_ordered: the reordered ones; scratch: "
              "the pre-trained ones, the distance of an unrelated solution; tensors of "
              "different shape left out)", ""]
    table: dict[str, list[float]] = {}
    groups: list[str] = []
    for task in tasks:
        for mode in ("finetuned", "finetuned_ordered", "scratch"):
            origin = (out / "pretrained-ordered" / task if mode == "finetuned_ordered"
                      else pretrained)
            if not (origin / "separator.ckpt").is_file():
                continue
            start = torch.load(origin / "separator.ckpt", map_location="cpu")
            for ckpt in sorted(runs.glob(f"{task}-{mode}-seed*/model/separator.ckpt")):
                if not re.fullmatch(rf"{task}-{mode}-seed\d+", ckpt.parent.parent.name):
                    continue
                moved = weight_movement(start, torch.load(ckpt, map_location="cpu"))
                groups += [g for g in moved if g not in groups]
                for g, v in moved.items():
                    table.setdefault(f"{task} | {mode}", []).append((g, v))
    if table:
        lines += ["| task | mode | " + " | ".join(groups) + " |",
                  "|---|---|" + "---|" * len(groups)]
        for key, pairs in table.items():
            cells = [_mean_std([v for g2, v in pairs if g2 == g]) for g in groups]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
