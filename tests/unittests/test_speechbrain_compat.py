"""SpeechBrain-compatible interfaces of GASSSeparator, tried as a SpeechBrain user would.

* ``separate_file(path, savedir=None)`` against SpeechBrain 1.1.2's own
  ``SepformerSeparation.separate_file`` on the same modules: shape ``[1, T, S]``, the model's
  rate, model order, and the values (SpeechBrain divides each source by its peak);
* SpeechBrain's encoder / masknet / decoder modules (tiny, randomly initialised SepFormer
  pieces, no download) run in GASSSeparator: one chunk equals ``SepformerSeparation``'s
  ``separate_batch``; a long input is separated chunk by chunk, the model never sees more than a
  chunk, and where chunk edges cannot matter the result equals the unchunked one;
* a SpeechBrain-layout model folder (``modules`` + ``pretrainer`` of ``encoder``, ``masknet``,
  ``decoder``) loads with ``from_hparams(trust_code=True)``, as SpeechBrain's interface loads it.
"""

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.inference.separation import SepformerSeparation
from speechbrain.lobes.models.dual_path import (
    Decoder,
    Dual_Path_Model,
    Encoder,
    SBTransformerBlock,
)

from gass_modules.inference.chunking import plan_chunks
from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.parts.masking import EncoderMaskerDecoder
from tests.doubles import ScaledCopies

RATE = 8000
N = 16  # encoder filters


def sepformer_modules(seed: int = 0) -> dict:
    """A tiny SepFormer (SpeechBrain's classes, random weights) in eval mode."""
    torch.manual_seed(seed)
    modules = {
        "encoder": Encoder(kernel_size=16, out_channels=N),
        "masknet": Dual_Path_Model(N, N, SBTransformerBlock(1, N, 2), SBTransformerBlock(1, N, 2),
                                   num_layers=1, K=20, num_spks=2),
        "decoder": Decoder(in_channels=N, out_channels=1, kernel_size=16, stride=8, bias=False),
    }
    return {k: m.eval() for k, m in modules.items()}


class PointwiseMasks(torch.nn.Module):
    """A masknet in SpeechBrain's layout ``[B, N, L] -> [S, B, N, L]`` that looks at one frame
    only (1x1 convolution): the whole model's receptive field is the encoder's and decoder's
    kernels, so chunking can only change samples near chunk edges."""

    def __init__(self, num_spks: int = 2) -> None:
        super().__init__()
        self.num_spks = num_spks
        self.conv = torch.nn.Conv1d(N, N * num_spks, 1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        masks = torch.sigmoid(self.conv(w))  # [B, S*N, L]
        return masks.view(w.shape[0], self.num_spks, N, -1).transpose(0, 1)  # [S, B, N, L]


def gass_interface(modules: dict, **hparams) -> GASSSeparator:
    """GASSSeparator around SpeechBrain modules with SpeechBrain's hparams names."""
    return GASSSeparator(modules=dict(modules), hparams={"num_spks": 2, "sample_rate": RATE,
                                                         **hparams},
                         run_opts={"device": "cpu"})


def speechbrain_interface(modules: dict) -> SepformerSeparation:
    """SpeechBrain's own interface around the same modules."""
    return SepformerSeparation(modules=dict(modules), hparams={"num_spks": 2, "sample_rate": RATE},
                               run_opts={"device": "cpu"})


# ---------------------------------------------------------------------------- separate_file


@pytest.mark.parametrize("file_rate,channels", [(RATE, 1), (16000, 2), (44100, 1)])
def test_separate_file_follows_sepformer_separation(tmp_path, file_rate, channels):
    """Same file, same modules: SpeechBrain's separate_file and gass's give one shape
    ``[1, T', S]`` at the model's rate, the outputs in the same (model) order and, once each is
    divided by its peak as SpeechBrain does, the same values."""
    modules = sepformer_modules()
    audio = 0.3 * np.random.default_rng(file_rate).standard_normal((int(1.5 * file_rate),
                                                                     channels))
    path = tmp_path / "mix.wav"
    sf.write(path, audio.astype(np.float32), file_rate, subtype="FLOAT")
    with torch.no_grad():
        reference = speechbrain_interface(modules).separate_file(str(path),
                                                                 savedir=tmp_path / "sb")
    ours = gass_interface(modules).separate_file(path, savedir=tmp_path / "unused")
    expected_length = int(np.ceil(audio.shape[0] * RATE / file_rate))
    assert ours.shape == reference.shape == (1, expected_length, 2)
    normalised = ours / ours.abs().amax(dim=1, keepdim=True)
    torch.testing.assert_close(normalised, reference, atol=1e-5, rtol=1e-4)
    assert ours.abs().amax() < 10 * float(np.abs(audio).max())  # levels kept, not normalised


def test_separate_file_is_chunked_and_keeps_model_order(tmp_path):
    """A file longer than a chunk: ``[1, T, S]`` with output k the model's output k (a
    fixed-gain model, so the order is checkable), values ``g_k * x`` at the model rate."""
    sep = GASSSeparator(modules={"separator": ScaledCopies([0.1, 0.9, 0.4], RATE)},
                        hparams={"sample_rate": RATE, "num_sources": 3, "chunk_seconds": 0.5},
                        run_opts={"device": "cpu"})
    x = 0.2 * np.random.default_rng(0).standard_normal((3 * RATE, 2)).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, RATE, subtype="FLOAT")
    est = sep.separate_file(tmp_path / "long.wav")
    mono = torch.from_numpy(x.mean(1))
    torch.testing.assert_close(est[0], mono[:, None] * torch.tensor([0.1, 0.9, 0.4]),
                               atol=1e-6, rtol=0)


def test_separate_file_points_old_options_to_separate_to_files(tmp_path):
    """The options of the former separate_file fail with a message naming the new method."""
    sep = GASSSeparator(modules={"separator": ScaledCopies([1.0], RATE)},
                        hparams={"sample_rate": RATE, "num_sources": 1},
                        run_opts={"device": "cpu"})
    sf.write(tmp_path / "a.wav", np.zeros(100, np.float32), RATE)
    with pytest.raises(TypeError, match=r"separate_to_files\(path, out_dir=\.\.\., \.\.\.\)"):
        sep.separate_file(tmp_path / "a.wav", out_dir=tmp_path / "out", keep_silent=True)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['colour'\\]"):
        sep.separate_file(tmp_path / "a.wav", colour="blue")
    with pytest.raises(ValueError, match="got 0 samples"):
        sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), RATE)
        sep.separate_file(tmp_path / "empty.wav")


# ------------------------------------------------------------- encoder / masknet / decoder


def test_sepformer_modules_in_one_chunk_equal_speechbrain():
    """SpeechBrain's modules in GASSSeparator: an input within one chunk gives exactly
    ``SepformerSeparation.separate_batch`` (the same composition); ``mods`` keeps them."""
    modules = sepformer_modules()
    sep = gass_interface(modules)
    assert isinstance(sep.mods.separator, EncoderMaskerDecoder)
    assert sep.mods.encoder is modules["encoder"] and sep.num_sources == 2
    mix = torch.randn(3, 4001)
    with torch.no_grad():
        reference = speechbrain_interface(modules).separate_batch(mix)
    torch.testing.assert_close(sep.separate_batch(mix), reference, atol=1e-6, rtol=1e-5)


def test_speechbrain_model_long_input_is_chunked_in_bounded_memory():
    """A long input through SpeechBrain modules: the encoder never sees more than a chunk, and
    with a masknet of one frame the chunked result equals the unchunked one except within the
    kernels' reach of a chunk edge, where the cross-fade weighs the edge samples down."""
    torch.manual_seed(1)
    modules = {"encoder": Encoder(kernel_size=16, out_channels=N), "masknet": PointwiseMasks(),
               "decoder": Decoder(in_channels=N, out_channels=1, kernel_size=16, stride=8,
                                  bias=False)}
    sep = gass_interface(modules)
    seen = []
    modules["encoder"].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    mix = torch.randn(1, 12 * RATE)  # 12 s
    chunked = sep.separate_batch(mix, chunk_seconds=1.0, overlap=0.25)
    plan = plan_chunks(mix.shape[-1], RATE, RATE, 1.0, 0.25)
    assert len(seen) == plan.count == 16 and max(seen) == plan.chunk == RATE
    seen.clear()
    whole = sep.separate_batch(mix, chunk_seconds=60.0)
    assert seen == [mix.shape[-1]]
    reach = 32  # encoder kernel + decoder kernel
    far = torch.ones(mix.shape[-1], dtype=torch.bool)
    for k in range(1, plan.count):  # chunk k starts in the overlap with chunk k - 1
        start = k * plan.hop
        for edge in (start, start + plan.overlap):  # chunk k's start, chunk k - 1's end
            far[max(0, edge - reach): edge + reach] = False
    torch.testing.assert_close(chunked[:, far], whole[:, far], atol=1e-5, rtol=1e-5)
    assert (chunked - whole).abs().max() < 0.02 * whole.abs().max()  # near edges: weighed down


def test_sepformer_long_input_runs_in_chunks():
    """The SepFormer masknet (attention over the whole input it gets) on 20 s: finite,
    input length kept, the model never given more than a 2-s chunk."""
    modules = sepformer_modules()
    sep = gass_interface(modules, chunk_seconds=2.0)
    seen = []
    modules["masknet"].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    mix = torch.randn(1, 20 * RATE)
    est = sep.separate_batch(mix)
    frames_per_chunk = modules["encoder"](torch.zeros(1, 2 * RATE)).shape[-1]
    assert est.shape == (1, 20 * RATE, 2) and torch.isfinite(est).all()
    assert len(seen) > 1 and max(seen) == frames_per_chunk


def test_speechbrain_model_folder_loads_with_trust_code(tmp_path):
    """A folder laid out as SpeechBrain's SepFormer folders (num_spks, encoder / masknet /
    decoder modules and their Pretrainer) loads in both interfaces; they agree on a short input
    and GASSSeparator separates a long one in chunks."""
    modules = sepformer_modules(seed=3)
    for name, module in modules.items():
        torch.save(module.state_dict(), tmp_path / f"{name}.ckpt")
    (tmp_path / "hyperparams.yaml").write_text(f"""
sample_rate: {RATE}
num_spks: 2
N: {N}
Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: 16
    out_channels: !ref <N>
SBtfintra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <N>
    nhead: 2
SBtfinter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <N>
    nhead: 2
MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    in_channels: !ref <N>
    out_channels: !ref <N>
    intra_model: !ref <SBtfintra>
    inter_model: !ref <SBtfinter>
    num_layers: 1
    K: 20
    num_spks: !ref <num_spks>
Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N>
    out_channels: 1
    kernel_size: 16
    stride: 8
    bias: False
modules:
    encoder: !ref <Encoder>
    masknet: !ref <MaskNet>
    decoder: !ref <Decoder>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        encoder: !ref <Encoder>
        masknet: !ref <MaskNet>
        decoder: !ref <Decoder>
""")
    ours = GASSSeparator.from_hparams(source=tmp_path, trust_code=True,
                                      run_opts={"device": "cpu"})
    theirs = SepformerSeparation.from_hparams(source=str(tmp_path), savedir=tmp_path / "sb",
                                              run_opts={"device": "cpu"})
    for name, module in modules.items():  # the checkpoints were loaded, not the random init
        loaded = getattr(ours.mods, name).state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in module.state_dict().items())
    mix = torch.randn(2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(ours.separate_batch(mix), theirs.separate_batch(mix),
                                   atol=1e-6, rtol=1e-5)
    assert ours.separate_batch(torch.randn(1, 30 * RATE), chunk_seconds=3.0).shape == (
        1, 30 * RATE, 2)


def test_masking_wrapper_checks_its_parts():
    """Wrong parts or a masknet with another number of sources fail with what to fix."""
    modules = sepformer_modules()
    with pytest.raises(TypeError, match="masknet must be a torch.nn.Module"):
        EncoderMaskerDecoder(modules["encoder"], "net", modules["decoder"], 2, RATE)
    three = EncoderMaskerDecoder(modules["encoder"], modules["masknet"], modules["decoder"],
                                 num_sources=3, sample_rate=RATE)
    with pytest.raises(RuntimeError, match="set num_sources to the masknet's num_spks"):
        three(torch.randn(1, 800))
    with pytest.raises(ValueError, match="needs hparams\\['sample_rate'\\]"):
        GASSSeparator(modules=modules, hparams={"num_spks": 2})
