"""Conformance suite: every model card in ``hparams/models/`` honours the separator contract.

docs/architecture.md ("Separator contract"): a separator maps ``[B, T]`` to ``[B, T, S]`` for any
``T >= 1``, never mixes items of a batch, is deterministic in eval mode, runs under bf16 autocast
without NaN, exports with ``torch.export`` and a dynamic length (the program matching eager),
and round-trips through SpeechBrain's ``Checkpointer``. The suite is parametrised over the card
files, so a contributed separator is covered by adding its card (and its row in
``EXPECTED_PARAMS``); nothing here names a model class.

Cost control (the whole suite must stay within a few minutes on 2 CPU cores):

* inputs are short (one or two multiples of the card's ``stride``) except for the awkward
  lengths the contract names, which run on the full card;
* ``torch.export`` traces every op of the unrolled graph with symbolic shapes, so its cost grows
  with depth, not with input length. The export test therefore runs on a *small but real*
  configuration of the card: the card loaded with the hyperpyyaml overrides of
  ``SMALL_OVERRIDES`` (fewer repetitions of the same block, same code paths). A card without a
  row is exported at full size.
"""

import itertools
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.checkpoints import Checkpointer

from gass_modules.lobes.base import Separator, export_separator
from gass_modules.sync_free import sync_free

ROOT = Path(__file__).resolve().parents[2]
CARDS = sorted((ROOT / "hparams" / "models").glob("*.yaml"))
CARD_IDS = [card.stem for card in CARDS]

# Expected parameter counts (what the paper or GASS reports for the configuration the card
# reproduces); a new card must add its row. Tolerance: PARAM_TOLERANCE relative.
EXPECTED_PARAMS = {
    "tdanet_wav": 10.8e6,  # GASS TDANet-Wav (Pons et al. 2024)
    "tdanet_stft": 7.4e6,  # GASS TDANet-STFT
    "tdanet_paper": 2.3e6,  # TDANet (Li et al. 2023), 2.33 M
    "bsrnn": 21.8e6,  # GASS BSRNN-large
    "bsrnn_small": 0.9e6,  # the card's own small size (tests, CPU demos)
    "bs_roformer": 0.78e6,  # the card's own CPU-trainable GASS size (BSRNN-small's)
    # BS-RoFormer (Lu et al. 2024) reports 93.4 M for D 384, L 12, 8 heads (one stereo stem);
    # the card's 4 mono stems give 105.25 M (see the card)
    "bs_roformer_music": 93.4e6,
    "tiger_small": 0.82e6,  # TIGER small (Xu et al. 2025), 0.82 M at 16 kHz with 2 sources
    "tiger": 0.82e6,  # TIGER at GASS's 4 outputs: the paper's size, 2 more mask outputs
    "bsrnn_causal": 0.85e6,  # bsrnn_small's widths, unidirectional time LSTMs (#28)
    "tdanet_stft_causal": 0.49e6,  # GASS-mini's widths at 16 kHz, causal block (#28)
}
PARAM_TOLERANCE = 0.15

# hyperpyyaml overrides giving a small but real configuration for the export test (see module
# docstring): the block is still applied more than once, so every code path is traced.
SMALL_OVERRIDES = {
    "tdanet_wav": {"separator": {"num_blocks": 2}},
    "tdanet_stft": {"separator": {"num_blocks": 2}},
    "tdanet_paper": {"separator": {"num_blocks": 2}},
    "bsrnn": {"separator": {"num_blocks": 2}},
    "bs_roformer_music": {"separator": {"num_blocks": 2}},
    # TIGER: two applications of the shared block (re-injection traced), MSA with 3 scales
    "tiger": {"separator": {"num_blocks": 2, "depth": 2}},
    "tiger_small": {"separator": {"num_blocks": 2, "depth": 2}},
}

AWKWARD_LENGTHS = (1, 7, 1001, 16003)

# One torch thread (tests/conftest.py): these models run thousands of small ops, and with two
# threads on a busy CPU every op waits for the other thread to be scheduled.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_card(card: Path, overrides: dict | None = None, seed: int = 0) -> dict:
    """Loads a model card with hyperpyyaml (parameters initialised from ``seed``)."""
    torch.manual_seed(seed)
    with open(card) as f:
        return load_hyperpyyaml(f, overrides=overrides or {})


def load_separator(card: Path, overrides: dict | None = None, seed: int = 0) -> Separator:
    """The card's separator in eval mode."""
    return load_card(card, overrides, seed)["separator"].eval()


def scale_atol(reference: torch.Tensor, rel: float = 1e-5) -> float:
    """Absolute tolerance relative to the magnitude of ``reference``."""
    return rel * float(reference.abs().max()) + 1e-7


@pytest.fixture(params=CARDS, ids=CARD_IDS)
def card(request) -> Path:
    """One model card path."""
    return request.param


def test_there_are_cards():
    """The suite is not vacuous: the built-in cards are present."""
    assert {"tdanet_wav", "tdanet_stft", "tdanet_paper"} <= set(CARD_IDS)


def test_card_defines_a_separator(card):
    """The card's ``separator`` is a Separator with the card's sample rate and source count."""
    hparams = load_card(card)
    model = hparams["separator"]
    assert isinstance(model, Separator), f"{card.name}: separator must subclass Separator"
    assert model.sample_rate == hparams["sample_rate"]
    assert model.num_sources == hparams["num_sources"]
    assert isinstance(model.stride, int) and model.stride >= 1


def test_parameter_count(card):
    """The card's size is within PARAM_TOLERANCE of the size it reproduces."""
    assert card.stem in EXPECTED_PARAMS, (
        f"add a row for {card.stem!r} to EXPECTED_PARAMS in {Path(__file__).name} (the "
        "parameter count the card is meant to reproduce)")
    count = sum(p.numel() for p in load_separator(card).parameters())
    expected = EXPECTED_PARAMS[card.stem]
    assert abs(count - expected) <= PARAM_TOLERANCE * expected, (
        f"{card.stem}: {count / 1e6:.2f} M parameters, expected {expected / 1e6:.2f} M "
        f"± {PARAM_TOLERANCE:.0%}")


def test_padded_length_is_the_smallest_multiple_of_the_stride(card):
    """``padded_length(T)`` is the smallest positive multiple of ``stride`` that is ``>= T``
    (found here by counting multiples, not by the method's formula), for T around each of the
    first multiples and the awkward lengths."""
    model = load_separator(card)  # the full card: a smaller one may have another stride (TIGER)
    stride = model.stride
    lengths = sorted({*range(0, 3 * stride + 2), *AWKWARD_LENGTHS})
    for length in lengths:
        expected = next(m for m in itertools.count(stride, stride) if m >= length)
        assert model.padded_length(length) == expected, (card.stem, stride, length)


@pytest.mark.parametrize("length", AWKWARD_LENGTHS)
def test_any_length_pads_inside_and_crops_back(card, length, monkeypatch):
    """``[B, T] -> [B, T, S]`` for awkward T. A spy on the core (``separate_padded``) sees it
    called once, on a multiple of the stride: the mix followed by zeros, up to
    ``padded_length(T)``; the output is the core's output cut back to T samples."""
    model = load_separator(card)
    batch = 1 if length > 10000 else 2  # the long case checks the length, not the batch
    mix = torch.randn(batch, length)
    calls = []
    core = model.separate_padded

    def spy(padded: torch.Tensor) -> torch.Tensor:
        out = core(padded)
        calls.append((padded.clone(), out.clone()))
        return out

    monkeypatch.setattr(model, "separate_padded", spy)
    with torch.no_grad():
        out = model(mix)
    assert len(calls) == 1, f"{card.stem}: the core ran {len(calls)} times"
    seen, core_out = calls[0]
    assert seen.shape == (batch, model.padded_length(length))
    assert seen.shape[-1] % model.stride == 0, (card.stem, seen.shape, model.stride)
    assert torch.equal(seen[:, :length], mix) and not seen[:, length:].any()
    assert out.shape == (batch, length, model.num_sources)
    assert torch.isfinite(out).all()
    assert torch.equal(out, core_out[:, :length])


def test_batch_items_are_independent(card):
    """Item 0's output is the same alone, batched, and batched with different neighbours."""
    model = load_separator(card)
    length = model.stride + 3
    mix = torch.randn(3, length)
    other = mix.clone()
    other[1:] = 10 * torch.randn(2, length)
    with torch.no_grad():
        alone = model(mix[:1])[0]
        batched = model(mix)[0]
        with_others = model(other)[0]
    atol = scale_atol(alone, 1e-4)
    assert torch.allclose(batched, alone, rtol=0, atol=atol)
    assert torch.allclose(with_others, alone, rtol=0, atol=atol)


def test_eval_mode_is_deterministic(card):
    """Two eval-mode calls give identical outputs (dropout off)."""
    model = load_separator(card)
    mix = torch.randn(2, model.stride + 5)
    with torch.no_grad():
        assert torch.equal(model(mix), model(mix))


# cards whose outputs cannot be renumbered by their parameters alone (Separator.permute_outputs
# raises): TIGER's sources read separate slices of the band features
CANNOT_PERMUTE = {"tiger", "tiger_small"}


def test_permute_outputs_renumbers_exactly_the_outputs(card):
    """``permute_outputs(order)`` gives the same outputs, renumbered (output k = old output
    order[k]), so fine-tuning from a pre-trained model's matched outputs starts from exactly what
    it learned; a card that cannot renumber says so."""
    model = load_separator(card)
    mix = torch.randn(1, 2 * model.stride + 5, generator=torch.Generator().manual_seed(3))
    order = list(range(model.num_sources))[1:] + [0]  # a cycle: every output moves
    with torch.no_grad():
        before = model(mix)  # [B, T, S]
        if card.stem in CANNOT_PERMUTE:
            with pytest.raises(NotImplementedError, match="cannot renumber"):
                model.permute_outputs(order)
            return
        model.permute_outputs(order)
        after = model(mix)
    assert not torch.allclose(before, before[..., order]), "outputs too alike to tell"
    torch.testing.assert_close(after, before[..., order], rtol=0, atol=scale_atol(before))
    with pytest.raises(ValueError, match="permutation"):
        model.permute_outputs([0] * model.num_sources)


def test_gradients_reach_every_parameter(card):
    """A training step back-propagates finite, non-zero gradients into every parameter."""
    model = load_separator(card).train()
    mix = torch.randn(2, 2 * model.stride)
    out = model(mix)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == [], f"no gradient for {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert bad == [], f"non-finite gradient for {bad}"
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert zero == [], f"all-zero gradient for {zero}"


def test_bf16_autocast_is_finite_and_close(card):
    """Under CPU bf16 autocast the output is finite and within 10 % (relative L2) of fp32."""
    model = load_separator(card)
    mix = torch.randn(2, model.stride + 11)
    with torch.no_grad():
        reference = model(mix)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(mix)
    assert out.shape == reference.shape
    assert torch.isfinite(out).all()
    error = (out.float() - reference).norm() / reference.norm()
    assert error < 0.1, f"bf16 relative error {error:.3f}"


def test_silent_and_invalid_mixtures(card):
    """Silence gives finite (zero-ish) sources; malformed input raises a ValueError."""
    model = load_separator(card)
    with torch.no_grad():
        out = model(torch.zeros(2, model.stride + 1))
    assert torch.isfinite(out).all()
    assert float(out.abs().max()) < 1e-3
    for bad in (torch.zeros(50), torch.zeros(2, 0), torch.zeros(2, 1, 50),
                torch.zeros(2, 50, dtype=torch.int16)):
        with pytest.raises(ValueError, match="expected"):
            model(bad)


def test_export_with_dynamic_length_matches_eager(card):
    """``export_separator`` traces one program that matches eager for other batches/lengths."""
    model = load_separator(card, SMALL_OVERRIDES.get(card.stem))
    program = export_separator(model).module()
    for batch, multiple in ((1, 1), (3, 5)):
        mix = torch.randn(batch, multiple * model.stride)
        with torch.no_grad():
            reference = model.separate_padded(mix)
            out = program(mix)
        assert out.shape == (batch, multiple * model.stride, model.num_sources)
        assert torch.allclose(out, reference, rtol=0, atol=scale_atol(reference, 1e-4))


def test_checkpointer_round_trip(card, tmp_path):
    """SpeechBrain's Checkpointer saves a separator and restores it into a fresh instance."""
    model = load_separator(card, seed=0)
    mix = torch.randn(2, model.stride + 7)
    with torch.no_grad():
        expected = model(mix)
    Checkpointer(tmp_path, recoverables={"separator": model}).save_checkpoint()
    fresh = load_separator(card, seed=1)
    with torch.no_grad():
        assert not torch.allclose(fresh(mix), expected)
    Checkpointer(tmp_path, recoverables={"separator": fresh}).recover_if_possible()
    with torch.no_grad():
        assert torch.equal(fresh.eval()(mix), expected)


def test_float64_and_nonfinite_mixtures_behave_the_same_for_every_card(card):
    """Issue 17 item 8: float64 input gives the float32 result (TDANet-Wav and the paper card
    raised a dtype error); NaN/Inf input raises a ValueError instead of passing through, except
    in sync-free mode (training), where it gives non-finite estimates and no host sync."""
    model = load_separator(card, SMALL_OVERRIDES.get(card.stem))
    mix = torch.randn(1, model.stride + 3)
    with torch.no_grad():
        expected = model(mix)
        got = model(mix.double())
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=0, atol=scale_atol(expected))
    for value in (float("nan"), float("inf")):
        bad = mix.clone()
        bad[0, 5] = value
        with pytest.raises(ValueError, match="NaN or Inf samples .*sample 5"):
            model(bad)
        with sync_free(), torch.no_grad():  # training: no host check, non-finite estimates
            assert not torch.isfinite(model(bad)).all()


# ---- causal cards (#28): the ``causal: true`` flag, streaming equals the full forward ----

STREAM_CHUNKS = (37, 160, 641, 4000)  # samples per call, aligned and not with the hop


def test_causal_flag_matches_the_card(card):
    """The card's ``causal`` flag (default false) is the separator's ``causal`` attribute; a
    non-causal separator refuses to stream with a message naming the causal cards."""
    hparams = load_card(card)
    model = hparams["separator"]
    assert model.causal is bool(hparams.get("causal", False))
    if not model.causal:
        assert model.lookahead is None
        with pytest.raises(TypeError, match="not causal"):
            model.init_state(1)
    else:
        assert isinstance(model.lookahead, int) and model.lookahead >= 0


def causal_cards() -> list[Path]:
    """The cards that say ``causal: true``."""
    return [c for c in CARDS if load_card(c).get("causal", False)]


@pytest.mark.parametrize("card", causal_cards(), ids=lambda c: c.stem)
@pytest.mark.parametrize("chunk", STREAM_CHUNKS)
def test_streaming_equals_the_full_causal_forward(card, chunk):
    """Fed in chunks of any size, ``forward_streaming`` gives what ``forward`` gives on the
    whole signal: max abs difference <= 1e-5 (float32) on every sample it has finished, and at
    least all but the look-ahead are finished."""
    model = load_separator(card)
    mix = 0.5 * torch.randn(2, model.sample_rate // 2)  # [B, T]
    with torch.no_grad():
        full = model(mix)  # [B, T, S]
        state = model.init_state(2)
        outs = []
        for piece in mix.split(chunk, dim=1):
            out, state = model.forward_streaming(piece, state)
            outs.append(out)
    streamed = torch.cat(outs, dim=1)
    assert mix.shape[1] - model.lookahead - 1 <= streamed.shape[1] <= mix.shape[1]
    assert float((streamed - full[:, :streamed.shape[1]]).abs().max()) <= 1e-5


@pytest.mark.parametrize("card", causal_cards(), ids=lambda c: c.stem)
def test_outputs_do_not_depend_on_input_after_the_lookahead(card):
    """The first ``N`` output samples are the same whatever follows input ``N + lookahead``;
    and the look-ahead is tight: for some ``N`` in every stride, sample ``N + lookahead - 1``
    matters."""
    model = load_separator(card)
    length = model.sample_rate // 4
    mix = torch.randn(1, length)
    with torch.no_grad():
        full = model(mix)
        for n in (1, model.stride // 3, length // 2 + 5):
            changed = mix.clone()
            changed[:, n + model.lookahead:] = 3 * torch.randn(1, length - n - model.lookahead)
            assert torch.equal(model(changed)[:, :n], full[:, :n])
        # one item per N of a whole stride (items are independent): change sample N + la - 1
        starts = range(length // 4, length // 4 + model.stride)
        later = mix.repeat(len(starts), 1)
        for i, n in enumerate(starts):
            # large: at the edge of an analysis and a synthesis window (Hann weights ~1e-5
            # each) a unit change moves the output by less than float32's resolution
            later[i, n + model.lookahead - 1] += 1e3
        out = model(later)
    matters = [not torch.equal(out[i, :n], full[0, :n]) for i, n in enumerate(starts)]
    assert any(matters), "the declared look-ahead is larger than the model's"
