"""Tests of gass_modules.chunking: the model-agnostic chunked separation and the one ``order``.

References: the closed form ``g_s * x`` of a gain separator, torchaudio's resampling, and
``GASSSeparator`` (which must be a thin layer over the same function). The deprecated names of
``order`` (``fixed_order``, ``align``, ``eval_alignment``) are each checked to still work, with a
``DeprecationWarning``.
"""

import math

import pytest
import torch

from gass_modules.chunking import (
    plan_chunks,
    resolve_order,
    separate_chunked,
    stream_separation,
)
from gass_modules.evaluation.benchmarks import BenchmarkScorer
from gass_modules.inference import GASSSeparator
from gass_modules.model_folder import save_model_folder
from tests.doubles import ScaledCopies

GAINS = torch.tensor([0.6, 0.3, 0.1])


def gains(x: torch.Tensor) -> torch.Tensor:
    """A separator function (no module, no attributes): ``[B, T] -> [B, T, 3]``."""
    return x.unsqueeze(-1) * GAINS.to(x.device)


class Rotating:
    """A callable separator whose output order rotates at every call (a PIT model's may)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return gains(x).roll(self.calls, dims=-1)


class ListReader:
    """A reader that is not a tensor: serves ``[C, N]`` and records what was asked."""

    def __init__(self, signal: torch.Tensor) -> None:
        self.signal = signal
        self.length = signal.shape[-1]
        self.requests: list[tuple[int, int]] = []

    def read(self, start: int, stop: int) -> torch.Tensor:
        self.requests.append((start, stop))
        lo, hi = max(start, 0), min(stop, self.length)
        return torch.nn.functional.pad(self.signal[:, lo:hi], (lo - start, stop - hi))


def test_any_callable_and_any_reader_give_the_closed_form():
    """A plain function over a reader: ``g_s * x`` exactly; chunks read in increasing order and
    never longer than a chunk (bounded memory)."""
    mix = torch.randn(2, 20000, generator=torch.Generator().manual_seed(1))
    reader = ListReader(mix)
    est = separate_chunked(gains, reader, sample_rate=8000, chunk_seconds=0.5, overlap=0.25)
    torch.testing.assert_close(est, mix.unsqueeze(-1) * GAINS, atol=1e-6, rtol=0)
    plan = plan_chunks(20000, 8000, 8000, 0.5, 0.25)
    assert len(reader.requests) == plan.count == 7  # ceil((20000 - 1000) / 3000)
    assert max(stop - start for start, stop in reader.requests) == plan.chunk == 4000
    assert [start for start, _ in reader.requests] == sorted(start for start, _ in
                                                              reader.requests)
    blocks = [e.shape[1] for _, e in stream_separation(gains, mix, sample_rate=8000,
                                                       chunk_seconds=0.5)]
    assert sum(blocks) == 20000 and max(blocks) <= plan.chunk


def test_order_aligned_follows_the_first_chunk_and_fixed_does_not():
    """``aligned`` undoes the rotation (outputs in the first chunk's order); ``fixed`` keeps
    each call's order, so the stems swap at every chunk (what a PIT model must not get)."""
    mix = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2))
    aligned = separate_chunked(Rotating(), mix, sample_rate=8000, chunk_seconds=0.5)
    torch.testing.assert_close(aligned, gains(mix).roll(1, dims=-1), atol=1e-6, rtol=0)
    fixed = separate_chunked(Rotating(), mix, sample_rate=8000, chunk_seconds=0.5,
                             order="fixed")
    assert (fixed - aligned).abs().max() > 0.1
    first = plan_chunks(16000, 8000, 8000, 0.5, 0.25).hop  # before the first overlap
    torch.testing.assert_close(fixed[:, :first], aligned[:, :first], atol=1e-6, rtol=0)


def test_resampling_matches_gass_separator_and_the_model_rate_attribute():
    """At another rate, a bare module (its ``sample_rate`` read off it) gives what
    ``GASSSeparator.separate_batch`` gives: one chunking path."""
    model = ScaledCopies([0.6, 0.3, 0.1], sample_rate=16000)
    mix = torch.randn(2, 22050, generator=torch.Generator().manual_seed(3))
    direct = separate_chunked(model, mix, sample_rate=44100, chunk_seconds=0.2)
    sep = GASSSeparator(modules={"separator": model},
                        hparams={"sample_rate": 16000, "num_sources": 3},
                        run_opts={"device": "cpu"})
    via_interface = sep.separate_batch(mix, sample_rate=44100, chunk_seconds=0.2)
    torch.testing.assert_close(direct.detach(), via_interface, atol=1e-6, rtol=0)


def test_rows_as_channels_share_one_order_and_downmix():
    """``rows="channels"``: the channels of one recording keep one source order (channel 1's
    sources matched to channel 0's); ``downmix`` separates their mean once."""
    left = torch.randn(1, 12000, generator=torch.Generator().manual_seed(4))
    stereo = torch.cat([left, 0.5 * left])  # [2, T]

    def powers(x):  # three distinct sources of a sample: x, x^2, x^3
        return torch.stack([x, x**2, x**3], dim=-1)

    def per_row(x):  # row 1's outputs come in another order than row 0's
        out = powers(x)
        return torch.stack([out[0], out[1].flip(-1)])

    est = separate_chunked(per_row, stereo, sample_rate=8000, chunk_seconds=0.5,
                           rows="channels")
    torch.testing.assert_close(est, powers(stereo), atol=1e-5, rtol=0)
    mono = separate_chunked(gains, stereo, sample_rate=8000, downmix=True)
    assert mono.shape == (1, 12000, 3)
    torch.testing.assert_close(mono, gains(stereo.mean(0, keepdim=True)), atol=1e-6, rtol=0)


def test_gradients_flow_when_enabled():
    """Chunking and overlap-add are differentiable: d(sum est_0)/d gain_0 = sum(x)."""
    gain = torch.tensor([0.5, 0.25], requires_grad=True)
    mix = torch.randn(1, 9000, generator=torch.Generator().manual_seed(5))
    est = separate_chunked(lambda x: x.unsqueeze(-1) * gain, mix, sample_rate=8000,
                           chunk_seconds=0.25, order="fixed")
    est[..., 0].sum().backward()
    assert gain.grad[0].item() == pytest.approx(mix.sum().item(), rel=1e-4)
    assert gain.grad[1].item() == 0


def test_bad_arguments_say_what_to_do():
    """Wrong separators, signals, orders and rows fail with what was expected."""
    mix = torch.zeros(1, 100)
    with pytest.raises(TypeError, match="separator must be callable"):
        stream_separation("model", mix, sample_rate=8000)
    with pytest.raises(ValueError, match=r"expected a float signal \[C, N\]"):
        stream_separation(gains, torch.zeros(100), sample_rate=8000)
    with pytest.raises(TypeError, match="reader with length and read"):
        stream_separation(gains, [0.0] * 100, sample_rate=8000)
    with pytest.raises(ValueError, match="order must be one of"):
        stream_separation(gains, mix, sample_rate=8000, order="oracle")
    with pytest.raises(ValueError, match="rows must be one of"):
        stream_separation(gains, mix, sample_rate=8000, rows="stereo")
    with pytest.raises(ValueError, match="cannot resample 44101 Hz"):
        stream_separation(gains, mix, sample_rate=44101, model_rate=16000)
    with pytest.raises(RuntimeError, match=r"separator returned \(1, 100\).*expected \[B, T, S\]"):
        separate_chunked(lambda x: x, mix, sample_rate=8000)
    with pytest.raises(RuntimeError, match="chunk 1/1 at 0.00 s: the separator returned NaN"):
        separate_chunked(lambda x: gains(x) * math.nan, mix, sample_rate=8000)


# ------------------------------------------------------------------ deprecated names of order


def test_resolve_order_maps_every_deprecated_name_with_a_warning():
    """fixed_order, align and eval_alignment still work; contradictions and typos fail."""
    for legacy, expected in [({"fixed_order": True}, "fixed"), ({"fixed_order": False}, "aligned"),
                             ({"align": True}, "aligned"), ({"align": False}, "fixed"),
                             ({"eval_alignment": "oracle"}, "aligned"),
                             ({"eval_alignment": "fixed"}, "fixed"),
                             ({"alignment": "oracle"}, "aligned")]:
        with pytest.warns(DeprecationWarning, match=f"{next(iter(legacy))}.*deprecated"):
            assert resolve_order(**legacy) == expected
    assert resolve_order(default="fixed") == "fixed"
    with pytest.raises(ValueError, match="contradicting source orders"):
        with pytest.warns(DeprecationWarning):
            resolve_order("aligned", fixed_order=True)
    with pytest.raises(ValueError, match="alignment must be one of"):
        resolve_order(eval_alignment="pit")
    with pytest.raises(TypeError, match="deprecated names of order"):
        resolve_order(fixed=True)


def test_align_keyword_still_works(tmp_path):
    """``separate_batch(align=False)`` / ``separate_to_files(align=...)`` = ``order="fixed"``."""
    sep = GASSSeparator(modules={"separator": ScaledCopies([0.7, 0.3], 8000)},
                        hparams={"sample_rate": 8000, "num_sources": 2},
                        run_opts={"device": "cpu"})
    mix = torch.randn(1, 8000)
    with pytest.warns(DeprecationWarning, match=r"align=True\|False is deprecated"):
        old = sep.separate_batch(mix, chunk_seconds=0.3, align=False)
    torch.testing.assert_close(old, sep.separate_batch(mix, chunk_seconds=0.3, order="fixed"))
    import soundfile as sf

    sf.write(tmp_path / "a.wav", mix[0].numpy(), 8000, subtype="FLOAT")
    with pytest.warns(DeprecationWarning, match="align"):
        result = sep.separate_to_files(tmp_path / "a.wav", align=True, keep_silent=True)
    assert result.sources.shape == (1, 8000, 2)


def test_model_folders_with_fixed_order_still_load(tmp_path):
    """A folder written before ``order`` (``fixed_order: true`` in hyperparams.yaml), and
    ``save_model_folder(fixed_order=True)``, give ``order == "fixed"``, with a warning; the
    ``fixed_order`` property reads it, with a warning."""
    card = ("sample_rate: 8000\nnum_sources: 2\nseparator: !new:tests.doubles."
            "ScaledCopies\n    gains: [0.5, 0.5]\n    sample_rate: !ref <sample_rate>\n")
    model = ScaledCopies([0.5, 0.5], 8000)
    with pytest.warns(DeprecationWarning, match="fixed_order"):
        folder = save_model_folder(model, tmp_path / "m", card=card, fixed_order=True)
    text = (folder / "hyperparams.yaml").read_text()
    assert "order: fixed" in text and "fixed_order" not in text
    (folder / "hyperparams.yaml").write_text(text.replace("order: fixed", "fixed_order: true"))
    with pytest.warns(DeprecationWarning, match=r"fixed_order: true\|false is deprecated"):
        sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert sep.order == "fixed"
    with pytest.warns(DeprecationWarning, match="GASSSeparator.fixed_order is deprecated"):
        assert sep.fixed_order is True
    with pytest.raises(ValueError, match="order must be one of"):
        GASSSeparator(modules={"separator": model},
                      hparams={"sample_rate": 8000, "num_sources": 2, "order": "pit"})


def test_benchmark_scorer_alignment_keyword_still_works():
    """``BenchmarkScorer(alignment="fixed")`` is ``order="fixed"``; ``alignment`` still reads
    the scoring's name (``oracle`` / ``fixed``)."""
    with pytest.warns(DeprecationWarning, match="BenchmarkScorer\\(alignment="):
        scorer = BenchmarkScorer("dnr", ["speech", "music"], alignment="fixed")
    assert (scorer.order, scorer.alignment) == ("fixed", "fixed")
    assert BenchmarkScorer("dnr", ["speech", "music"]).alignment == "oracle"
    refs = torch.randn(1, 800, 2)
    swapped = scorer.add("m", refs.sum(-1), refs, refs.flip(-1), 8000)["model"]
    torch.testing.assert_close(swapped, refs.flip(-1).double())  # fixed: no re-matching
