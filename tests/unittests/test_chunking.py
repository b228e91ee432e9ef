"""Tests of gass_modules.inference.chunking: the model-agnostic chunked separation and the one
``order``.

References: the closed form ``g_s * x`` of a gain separator, torchaudio's resampling, and
``GASSSeparator`` (which must be a thin layer over the same function). The names ``order`` had
before gass 2.0.0 (``fixed_order``, ``align``, ``eval_alignment``, ``alignment``) are each
checked to fail with a message naming what to write, except ``fixed_order:`` in a model folder
on disk, which still loads.
"""

import math
import re

import pytest
import torch

from gass_modules.evaluation.benchmarks import BenchmarkScorer
from gass_modules.inference.chunking import plan_chunks, separate_chunked, stream_separation
from gass_modules.inference.separator import GASSSeparator
from gass_modules.metrics import align_to_references
from gass_modules.model_folder.folder import save_model_folder
from gass_modules.order import (
    FORMER_NAMES,
    ORDERS,
    check_no_former_names,
    check_order,
    order_from_former,
    resolve_order,
)
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


# ---------------------------------------------- one vocabulary of order (gass_modules.order)


def test_order_vocabulary_and_its_former_names():
    """Two words; the four former names map onto them; a typo or a former word fails."""
    assert ORDERS == ("aligned", "fixed")
    assert (resolve_order(), resolve_order("fixed"), resolve_order(None, "fixed")) == (
        "aligned", "fixed", "fixed")
    expected = {("fixed_order", True): "fixed", ("fixed_order", False): "aligned",
                ("align", True): "aligned", ("align", False): "fixed",
                ("eval_alignment", "oracle"): "aligned", ("eval_alignment", "fixed"): "fixed",
                ("alignment", "oracle"): "aligned", ("alignment", "fixed"): "fixed"}
    assert {(n, v): order_from_former(n, v) for n in FORMER_NAMES
            for v in FORMER_NAMES[n]} == expected
    with pytest.raises(ValueError, match=r"'oracle' is the word of gass before 2.0.0, write "
                                         r"'aligned'"):
        check_order("oracle")
    with pytest.raises(ValueError, match="order must be one of"):
        resolve_order("pit")
    with pytest.raises(ValueError, match="fixed_order must be one of"):
        order_from_former("fixed_order", 1)  # an int is not a yaml boolean
    with pytest.raises(KeyError, match="not a former name"):
        order_from_former("fixed", True)


@pytest.mark.parametrize("name,value,instead", [
    ("fixed_order", True, "order: fixed"), ("fixed_order", False, "order: aligned"),
    ("align", False, "order: fixed"), ("eval_alignment", "oracle", "order: aligned"),
    ("alignment", "fixed", "order: fixed"), ("eval_alignment", "pit", "order: aligned (PIT")])
def test_former_names_in_settings_say_what_to_write(name, value, instead):
    """A recipe key of before 2.0.0 is an error naming the ``order:`` to write, not ignored."""
    check_no_former_names({"order": "fixed", name: None}, "the recipe")  # null: not given
    with pytest.raises(ValueError, match=rf"the recipe says {name}: .*removed in gass 2.0.0: "
                                         rf"write {re.escape(instead)}"):
        check_no_former_names({name: value}, "the recipe")


def test_removed_keywords_are_refused(tmp_path):
    """``align=``, ``fixed_order=``, ``alignment=`` and ``GASSSeparator.fixed_order`` are gone
    (a TypeError or AttributeError, never a silent default); ``order=`` gives their results."""
    import soundfile as sf

    sep = GASSSeparator(modules={"separator": ScaledCopies([0.7, 0.3], 8000)},
                        hparams={"sample_rate": 8000, "num_sources": 2},
                        run_opts={"device": "cpu"})
    mix = torch.randn(1, 8000)
    sf.write(tmp_path / "a.wav", mix[0].numpy(), 8000, subtype="FLOAT")
    with pytest.raises(TypeError, match="align"):
        sep.separate_batch(mix, chunk_seconds=0.3, align=False)
    with pytest.raises(TypeError, match="align"):
        sep.separate_to_files(tmp_path / "a.wav", align=True)
    with pytest.raises(TypeError, match="align"):
        sep.separate_file(tmp_path / "a.wav", align=True)
    with pytest.raises(TypeError, match="fixed_order"):
        save_model_folder(ScaledCopies([0.5], 8000), tmp_path / "m", fixed_order=True)
    with pytest.raises(TypeError, match="alignment"):
        BenchmarkScorer("dnr", ["speech", "music"], alignment="fixed")
    assert not hasattr(sep, "fixed_order") and not (tmp_path / "m").exists()
    refs = torch.randn(1, 400, 2)
    with pytest.raises(ValueError, match="write 'aligned'"):
        align_to_references(refs, refs.flip(-1), "oracle")
    torch.testing.assert_close(align_to_references(refs, refs.flip(-1), "aligned"), refs)
    fixed = sep.separate_batch(mix, chunk_seconds=0.3, order="fixed")
    torch.testing.assert_close(fixed, mix[..., None] * torch.tensor([0.7, 0.3]), atol=1e-5,
                               rtol=1e-4)


def test_model_folders_with_fixed_order_still_load(tmp_path):
    """A folder written before ``order`` (``fixed_order: true|false`` in hyperparams.yaml) loads
    as ``order: fixed|aligned``, with a warning that says how to re-save it; a folder saying both
    and disagreeing, or a bad order, fails."""
    model = ScaledCopies([0.5, 0.5], 8000)
    folder = save_model_folder(model, tmp_path / "m", order="fixed")
    text = (folder / "hyperparams.yaml").read_text()
    assert "order: fixed" in text and "fixed_order" not in text
    for old, expected in (("fixed_order: true", "fixed"), ("fixed_order: false", "aligned")):
        (folder / "hyperparams.yaml").write_text(text.replace("order: fixed", old))
        with pytest.warns(DeprecationWarning, match=rf"written before gass 2.0.0 \({old}\): "
                                                    rf"read as order: {expected}.*save_model"):
            sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
        assert sep.order == expected
    (folder / "hyperparams.yaml").write_text(text + "fixed_order: false\n")
    with pytest.raises(ValueError, match="says order: fixed and fixed_order: False"):
        GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    with pytest.raises(ValueError, match="order must be one of"):
        GASSSeparator(modules={"separator": model},
                      hparams={"sample_rate": 8000, "num_sources": 2, "order": "pit"})


def test_benchmark_scorer_speaks_order():
    """``BenchmarkScorer(order="fixed")`` scores output k against reference k; the default
    ``"aligned"`` re-matches; the summary says ``order:``, the same word as everywhere."""
    scorer = BenchmarkScorer("dnr", ["speech", "music"], order="fixed")
    aligned = BenchmarkScorer("dnr", ["speech", "music"])
    assert (scorer.order, aligned.order) == ("fixed", "aligned")
    refs = torch.randn(1, 800, 2)
    swapped = scorer.add("m", refs.sum(-1), refs, refs.flip(-1), 8000)["model"]
    torch.testing.assert_close(swapped, refs.flip(-1).double())  # fixed: no re-matching
    matched = aligned.add("m", refs.sum(-1), refs, refs.flip(-1), 8000)["model"]
    torch.testing.assert_close(matched, refs.double())
    assert "order: fixed;" in scorer.summary_markdown()
    assert "alignment" not in scorer.summary_markdown()
