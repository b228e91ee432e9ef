"""Datasets of mixer draws: deterministic evaluation sets (live or frozen) and the training stream.

Two ways to consume :class:`~gass_modules.dataio.mixer.GASSMixer` items with SpeechBrain's
dataloader and ``PaddedBatch``:

* :func:`make_eval_set`: a ``DynamicItemDataset`` whose item ``i`` is a pure function of
  (manifest, scenario, seed, i); :func:`export_eval_set` freezes it to wav + csv and
  :func:`load_eval_set` reads the frozen copy back as a ``DynamicItemDataset``;
* :class:`MixtureStream`: a ``torch.utils.data.IterableDataset`` for training, whose items are
  seeded from (seed, epoch, rank, k) with ``k`` strided over dataloader workers, so DDP ranks and
  workers never repeat each other's mixtures.

Evaluation and training items are drawn from different seed streams, so they never meet.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import soundfile as sf
import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataset import DynamicItemDataset

from gass_modules.dataio.mixer import ITEM_KEYS, GASSMixer, mixture_rng

_EVAL_STREAM, _TRAIN_STREAM = 0, 1  # first seed key: eval items and training items never meet


class _EvalPipeline:
    """The dynamic item of :func:`make_eval_set` (a class so that the dataset pickles)."""

    def __init__(self, mixer: GASSMixer, seed: int) -> None:
        self.mixer = mixer
        self.seed = seed

    def __call__(self, index: int) -> Iterator:
        m = self.mixer.draw(mixture_rng(self.seed, _EVAL_STREAM, index))
        item = m.to_item("")
        yield item["mix"]
        yield item["targets"]
        yield item["num_sources"]
        yield item["categories"]


def make_eval_set(mixer: GASSMixer, num_mixtures: int, seed: int = 0,
                  id_prefix: str = "eval") -> DynamicItemDataset:
    """A deterministic evaluation set: item ``i`` is a pure function of (mixer, seed, i).

    The mixer fixes manifest and scenario. Item ``i`` does not depend on ``num_mixtures`` (a
    larger set extends a smaller one) nor on the order or process in which items are read.

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    num_mixtures : int
        Number of items.
    seed : int
        Seed of the set.
    id_prefix : str
        Item ids are ``<id_prefix>-<index:06d>``.

    Returns
    -------
    DynamicItemDataset
        Output keys ``id``, ``mix``, ``targets``, ``num_sources``, ``categories``; use it with
        ``speechbrain.dataio.dataloader.make_dataloader`` (PaddedBatch is the default collate).

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> from gass_modules.dataio.manifest import Manifest
    >>> path = Path(tempfile.mkdtemp()) / "noise.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(path)], [16000], [16000], [1], ["sfx"], ["g"]),
    ...                   {"duration": 0.5, "foreground_categories": ["sfx"]})
    >>> ds = make_eval_set(mixer, 3, seed=7)
    >>> ds[2]["id"], ds[2]["targets"].shape, torch.equal(ds[2]["mix"], ds[2]["mix"])
    ('eval-000002', torch.Size([8000, 4]), True)
    """
    if num_mixtures < 1:
        raise ValueError(f"expected num_mixtures >= 1, got {num_mixtures}")
    data = {f"{id_prefix}-{i:06d}": {"index": i} for i in range(num_mixtures)}
    dataset = DynamicItemDataset(data)
    dataset.add_dynamic_item(_EvalPipeline(mixer, seed).__call__, takes=["index"],
                             provides=list(ITEM_KEYS[1:]))
    dataset.set_output_keys(list(ITEM_KEYS))
    return dataset


def export_eval_set(mixer: GASSMixer, num_mixtures: int, out_dir: str | Path, seed: int = 0,
                    id_prefix: str = "eval") -> Path:
    """Freezes :func:`make_eval_set` to float wav files and a SpeechBrain csv.

    Writes ``<out_dir>/<id>/mix.wav`` and ``s1.wav`` ... ``s<S_max>.wav`` (32-bit float, so the
    frozen set reproduces the on-the-fly one sample for sample) and ``<out_dir>/<id_prefix>.csv``
    with columns ``ID, duration, mix_wav, s1_wav, ..., active_sources, source_categories,
    source_clips, gains_db`` (paths as ``$data_root/...``, lists joined with ``;``).

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    num_mixtures : int
        Number of items.
    out_dir : str or Path
        Output folder.
    seed : int
        Seed of the set (as in :func:`make_eval_set`).
    id_prefix : str
        Item id prefix (as in :func:`make_eval_set`).

    Returns
    -------
    Path
        The csv file.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> from gass_modules.dataio.manifest import Manifest
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "n.wav", np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(folder / "n.wav")], [16000], [16000], [1],
    ...                            ["sfx"], ["g"]), {"duration": 0.25})
    >>> csv_path = export_eval_set(mixer, 2, folder / "frozen", seed=3)
    >>> csv_path.name, len(csv_path.read_text().splitlines())
    ('eval.csv', 3)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sc = mixer.scenario
    slots = [f"s{k + 1}" for k in range(sc.max_sources)]
    header = ["ID", "duration", "mix_wav", *[f"{s}_wav" for s in slots], "active_sources",
              "source_categories", "source_clips", "gains_db"]
    csv_path = out_dir / f"{id_prefix}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(num_mixtures):
            mix_id = f"{id_prefix}-{i:06d}"
            m = mixer.draw(mixture_rng(seed, _EVAL_STREAM, i))
            folder = out_dir / mix_id
            folder.mkdir(exist_ok=True)
            sf.write(folder / "mix.wav", m.mix, sc.sample_rate, subtype="FLOAT")
            for k, s in enumerate(slots):
                sf.write(folder / f"{s}.wav", m.targets[:, k], sc.sample_rate, subtype="FLOAT")
            writer.writerow([
                mix_id, f"{sc.duration:.6g}", f"$data_root/{mix_id}/mix.wav",
                *[f"$data_root/{mix_id}/{s}.wav" for s in slots], m.num_sources,
                ";".join(m.categories), ";".join(mixer.manifest.ids[c] for c in m.clips),
                ";".join(f"{g:.4f}" for g in m.gains_db),
            ])
    return csv_path


class _FrozenPipeline:
    """The dynamic item of :func:`load_eval_set`: wav files back to the item contract."""

    def __call__(self, mix_wav: str, *rest: str) -> Iterator:
        *source_wavs, active, cats = rest
        yield read_audio(mix_wav)
        yield torch.stack([read_audio(p) for p in source_wavs], dim=-1)  # [T, S_max]
        yield int(active)
        yield cats.split(";")


def load_eval_set(csv_path: str | Path,
                  replacements: Mapping[str, str] | None = None) -> DynamicItemDataset:
    """Reads a frozen evaluation set written by :func:`export_eval_set`.

    Arguments
    ---------
    csv_path : str or Path
        The csv file.
    replacements : mapping, optional
        ``$name`` replacements; ``data_root`` defaults to the csv's folder.

    Returns
    -------
    DynamicItemDataset
        Same output keys and values as the on-the-fly :func:`make_eval_set`.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> from gass_modules.dataio.manifest import Manifest
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "n.wav", np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(folder / "n.wav")], [16000], [16000], [1],
    ...                            ["sfx"], ["g"]), {"duration": 0.25})
    >>> frozen = load_eval_set(export_eval_set(mixer, 2, folder / "frozen", seed=3))
    >>> torch.equal(frozen[1]["targets"], make_eval_set(mixer, 2, seed=3)[1]["targets"])
    True
    """
    csv_path = Path(csv_path)
    repl = {"data_root": str(csv_path.parent.resolve()), **(replacements or {})}
    dataset = DynamicItemDataset.from_csv(str(csv_path), replacements=repl)
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    slots = sorted((c for c in header if c.startswith("s") and c.endswith("_wav")),
                   key=lambda c: int(c[1:-4]))
    if "mix_wav" not in header or not slots:
        raise ValueError(f"expected mix_wav and s<k>_wav columns in {csv_path}, found {header}")
    dataset.add_dynamic_item(_FrozenPipeline().__call__,
                             takes=["mix_wav", *slots, "active_sources", "source_categories"],
                             provides=list(ITEM_KEYS[1:]))
    dataset.set_output_keys(list(ITEM_KEYS))
    return dataset


def _distributed_rank() -> int:
    """This process's DDP rank (torch.distributed when initialised, else ``$RANK``, else 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


class MixtureStream(torch.utils.data.IterableDataset):
    """Training mixtures drawn on the fly, distinct per epoch, DDP rank and dataloader worker.

    Item ``k`` of an epoch on a rank is drawn with a generator seeded from
    ``(seed, epoch, rank, k)`` and dataloader worker ``w`` of ``W`` takes the items
    ``k = w, w + W, w + 2W, ...``. The worker id thus enters every seed (as in lhotse's
    ``make_worker_init_fn``, which seeds from seed, rank and worker id), but with numpy's
    ``SeedSequence`` instead of a sum, so no two (rank, worker, item) ever share a seed; and the
    set of mixtures a rank sees in an epoch does not change with ``num_workers``.

    Arguments
    ---------
    mixer : GASSMixer
        Manifest + scenario.
    seed : int
        Base seed.
    epoch_size : int, optional
        Items per epoch and rank; None streams forever (use SpeechBrain's
        ``make_dataloader(..., looped_nominal_epoch=N)``).
    rank : int, optional
        DDP rank; by default ``torch.distributed``'s rank, else ``$RANK``, else 0.
    id_prefix : str
        Item ids are ``<id_prefix>-e<epoch>-r<rank>-<k:09d>``.

    Example
    -------
    >>> import tempfile
    >>> import numpy as np
    >>> from gass_modules.dataio.manifest import Manifest
    >>> path = Path(tempfile.mkdtemp()) / "noise.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 16000), 16000)
    >>> mixer = GASSMixer(Manifest(["n"], [str(path)], [16000], [16000], [1], ["sfx"], ["g"]),
    ...                   {"duration": 0.25})
    >>> stream = MixtureStream(mixer, seed=1, epoch_size=3, rank=1)
    >>> [item["id"] for item in stream]
    ['train-e0-r1-000000000', 'train-e0-r1-000000001', 'train-e0-r1-000000002']
    """

    def __init__(self, mixer: GASSMixer, seed: int = 0, epoch_size: int | None = None,
                 rank: int | None = None, id_prefix: str = "train") -> None:
        super().__init__()
        if epoch_size is not None and epoch_size < 1:
            raise ValueError(f"expected epoch_size >= 1 or None (endless), got {epoch_size}")
        if rank is not None and rank < 0:
            raise ValueError(f"expected rank >= 0 or None, got {rank}")
        self.mixer = mixer
        self.seed = seed
        self.epoch_size = epoch_size
        self.rank = rank
        self.id_prefix = id_prefix
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose stream the next iteration yields.

        Arguments
        ---------
        epoch : int
            Epoch number (>= 0).
        """
        if epoch < 0:
            raise ValueError(f"expected epoch >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.epoch_size is None:
            raise TypeError("an endless MixtureStream has no length; give epoch_size or use "
                            "make_dataloader(..., looped_nominal_epoch=N)")
        return self.epoch_size

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        rank = _distributed_rank() if self.rank is None else self.rank
        k = worker
        while self.epoch_size is None or k < self.epoch_size:
            rng = mixture_rng(self.seed, _TRAIN_STREAM, self.epoch, rank, k)
            mix_id = f"{self.id_prefix}-e{self.epoch}-r{rank}-{k:09d}"
            yield self.mixer.draw(rng).to_item(mix_id)
            k += num_workers
