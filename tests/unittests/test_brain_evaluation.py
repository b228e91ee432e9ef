"""The Evaluator alone (gass_modules.evaluation.brain_evaluation), and SeparationBrain delegating to
it.

The expected values are closed forms: a separator whose outputs are gain-scaled copies of the
mixture (``tests.doubles.ScaledCopies``) against references that are other gain-scaled copies,
so the loss and the SI-SNR of every item are known without running a network.
"""

import json
import math

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from gass_modules.evaluation.brain_evaluation import Evaluator, holds_recordings
from gass_modules.inference.chunking import separate_chunked
from gass_modules.losses import fixed_order_log_mse, pit_log_mse
from gass_modules.training.brain import SeparationBrain
from tests.doubles import ScaledCopies

RATE = 8000


def items(count=3, length=800, gains=(0.8, 0.3), seed=0):
    """Mixer items: references ``g_s * x`` for a noise mixture ``x``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        mix = torch.randn(length - 100 * i, generator=gen)  # different lengths: padded batches
        out.append({"id": f"m{i}", "mix": mix, "targets": mix.unsqueeze(-1) * torch.tensor(gains),
                    "num_sources": 2, "categories": ["speech", "music"]})
    return out


def hparams(tmp_path, **extra):
    return {"loss": pit_log_mse, "output_folder": tmp_path, "eval_save_audio": 0,
            "eval_figures": 0, **extra}


def test_evaluator_alone_scores_each_item_on_its_own_samples(tmp_path):
    """The loss is the mean over batches of the mean over items of the loss on each item's own
    samples (brute force below), and the report has a row per item with its closed-form SI-SNR
    (an estimate ``g x`` of a reference ``g' x`` is a perfect scale-invariant match)."""
    test = items()
    separator = ScaledCopies([0.4, 0.6], RATE)
    evaluator = Evaluator(separator, hparams(tmp_path))
    batches = [PaddedBatch(test[:2]), PaddedBatch(test[2:])]
    loss = evaluator.evaluate(batches, updates=7)
    per_batch = []
    for chunk in (test[:2], test[2:]):
        losses = [pit_log_mse(item["targets"][None], separator(item["mix"][None]).detach(),
                              item["mix"][None]).mean() for item in chunk]
        per_batch.append(float(torch.stack(losses).mean()))
    assert loss == pytest.approx(sum(per_batch) / 2, abs=1e-4)
    rows = evaluator.scorer.rows
    assert [r["id"] for r in rows] == ["m0", "m1", "m2"]
    assert all(r["si_snr"] == pytest.approx([r["si_snr"][0]] * 2) and r["si_snr"][0] > 60
               for r in rows)
    headline = json.loads((tmp_path / "eval" / "headline.json").read_text())
    assert headline["updates"] == 7 and headline["parameters"] == 2
    assert headline["loss"] == pytest.approx(loss)
    assert separator.training  # its mode is restored


def test_brain_evaluate_is_the_evaluators(tmp_path):
    """SeparationBrain.evaluate gives the rows, loss and files of an Evaluator on the same data."""
    test = items()
    brain = SeparationBrain({"separator": ScaledCopies([0.4, 0.6], RATE)},
                            hparams=hparams(tmp_path / "brain"), run_opts={"device": "cpu"})
    loader = torch.utils.data.DataLoader(test, batch_size=2, collate_fn=PaddedBatch)
    brain_loss = brain.evaluate(loader, progressbar=False)
    evaluator = Evaluator(ScaledCopies([0.4, 0.6], RATE), hparams(tmp_path / "alone"))
    alone_loss = evaluator.evaluate(loader)
    assert brain_loss == pytest.approx(alone_loss, abs=1e-6)
    assert brain.scorer is brain.evaluation.scorer
    assert brain.scorer.rows == evaluator.scorer.rows
    assert brain.eval_folder == tmp_path / "brain" / "eval"
    assert sorted(p.name for p in brain.eval_folder.iterdir()) == sorted(
        p.name for p in evaluator.eval_folder.iterdir())


def test_recordings_are_separated_chunked_at_their_own_rate(tmp_path):
    """Items with their own sample_rate are separated one by one, chunk by chunk, resampled to and
    from the model's rate: the same estimates as separate_chunked itself."""
    gen = torch.Generator().manual_seed(1)
    refs = torch.randn(2, 16000, 2, generator=gen) * torch.tensor([0.8, 0.3])  # [C, T, S]
    item = {"id": "rec", "mix": refs.sum(-1), "targets": refs, "num_sources": 2,
            "categories": ["speech", "music"], "sample_rate": 16000}
    separator = ScaledCopies([0.5, 0.25], RATE)
    evaluator = Evaluator(separator, hparams(tmp_path, loss=fixed_order_log_mse,
                                             chunk_seconds=0.5), order="fixed")
    batch = PaddedBatch([item])
    assert holds_recordings(batch) and not holds_recordings(PaddedBatch(items(1)))
    with torch.no_grad():
        (est,) = evaluator.separate_batch(batch)
    want = separate_chunked(separator, item["mix"], sample_rate=16000, model_rate=RATE,
                            chunk_seconds=0.5, overlap=0.25, order="fixed", rows="channels")
    assert est.shape == (2, 16000, 2)
    torch.testing.assert_close(est, want.detach(), atol=1e-5, rtol=0)
    loss = evaluator.evaluate([batch])
    assert math.isfinite(loss) and [r["id"] for r in evaluator.scorer.rows] == ["rec"]


def test_export_writes_a_loadable_folder_in_the_evaluators_order(tmp_path):
    from gass_modules.inference.separator import GASSSeparator

    evaluator = Evaluator(ScaledCopies([0.5, 0.25], RATE), {"model_folder": tmp_path / "m",
                                                            "chunk_seconds": 2.0},
                          order="fixed")
    folder = evaluator.export_model_folder()
    loaded = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert (loaded.order, loaded.hparams.chunk_seconds) == ("fixed", 2.0)
    mix = torch.randn(1, 400)
    torch.testing.assert_close(loaded.separate_batch(mix), mix.unsqueeze(-1) * torch.tensor(
        [0.5, 0.25]))
    with pytest.raises(ValueError, match="needs a folder"):
        Evaluator(ScaledCopies([1.0], RATE), {}).export_model_folder()


def test_bad_use_says_what_to_do(tmp_path):
    with pytest.raises(TypeError, match="separator nn.Module"):
        Evaluator("not a model", {})
    evaluator = Evaluator(ScaledCopies([1.0, 1.0], RATE), hparams(tmp_path))
    batch = PaddedBatch(items(1))
    with pytest.raises(RuntimeError, match=r"call start\(\) first"):
        evaluator.score_batch(evaluator.separate_batch(batch), batch)
    with pytest.raises(RuntimeError, match=r"call start\(\) first"):
        evaluator.finish(0.0)
    with pytest.raises(ValueError, match="no test batches"):
        evaluator.evaluate([])
    with pytest.raises(TypeError, match="must make a scorer"):
        Evaluator(ScaledCopies([1.0], RATE), hparams(tmp_path, scorer=dict)).start()
    stereo = PaddedBatch([{"id": "a", "mix": torch.zeros(2, 80)}])
    with pytest.raises(ValueError, match=r"expected batch.mix.data \[B, T\]"):
        evaluator.separate_batch(stereo)
