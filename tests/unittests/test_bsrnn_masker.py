"""BSRNN's masker form (#16): ``BSRNNMasker`` is the ``MaskNet`` of a SpeechBrain separation recipe.

The recipe is run as SpeechBrain's ``recipes/WSJ0Mix/separation/train.py`` runs it: a yaml with
``Encoder``, ``MaskNet`` and ``Decoder``, and a ``Brain`` whose ``compute_forward`` is that
recipe's (encode, mask, decode each source, fix the length) and whose objective is its PIT
SI-SNR. Values are checked: training lowers the loss, softmax masks make the estimates add up to
the decoded mixture, and the masks follow the documented channel layout.
"""

import pytest
import speechbrain as sb
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

from gass_modules.lobes.band_split import band_masks
from gass_modules.lobes.bsrnn import BSRNN, BSRNNMasker

RECIPE_YAML = """
num_spks: 2
N_encoder_out: 32
kernel_size: 16
kernel_stride: 8

Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: !ref <kernel_size>
    out_channels: !ref <N_encoder_out>

MaskNet: !new:gass_modules.lobes.bsrnn.BSRNNMasker
    enc_channels: !ref <N_encoder_out>
    num_sources: !ref <num_spks>
    band_channels: 8
    feature_dim: 16
    hidden_dim: 16
    num_blocks: 1

Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N_encoder_out>
    out_channels: 1
    kernel_size: !ref <kernel_size>
    stride: !ref <kernel_stride>
    bias: False

modules:
    encoder: !ref <Encoder>
    decoder: !ref <Decoder>
    masknet: !ref <MaskNet>

opt_class: !name:torch.optim.Adam
    lr: 0.003
"""


class Separation(sb.Brain):
    """The forward pass and objective of SpeechBrain's WSJ0Mix separation recipe (its
    ``compute_forward`` takes the mixture and targets; here they come from the batch)."""

    def compute_forward(self, batch, stage):
        mix, mix_lens = batch.mix_sig
        mix, mix_lens = mix.to(self.device), mix_lens.to(self.device)
        targets = torch.stack([batch.s1_sig.data, batch.s2_sig.data], dim=-1).to(self.device)
        # Separation (as recipes/WSJ0Mix/separation/train.py)
        mix_w = self.hparams.Encoder(mix)
        est_mask = self.hparams.MaskNet(mix_w)
        mix_w = torch.stack([mix_w] * self.hparams.num_spks)
        sep_h = mix_w * est_mask
        # Decoding
        est_source = torch.cat(
            [self.hparams.Decoder(sep_h[i]).unsqueeze(-1) for i in range(self.hparams.num_spks)],
            dim=-1,
        )
        # T changed after conv1d in encoder, fix it here
        T_origin = mix.size(1)
        T_est = est_source.size(1)
        if T_origin > T_est:
            est_source = F.pad(est_source, (0, 0, 0, T_origin - T_est))
        else:
            est_source = est_source[:, :T_origin, :]
        return est_source, targets

    def compute_objectives(self, predictions, batch, stage):
        est_source, targets = predictions
        return get_si_snr_with_pitwrapper(targets, est_source).mean()


def two_speaker_set(items: int = 4, length: int = 2000) -> DynamicItemDataset:
    """Mixtures of two tones with gliding frequencies (fixed seed): mix_sig, s1_sig, s2_sig."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length) / 8000
    data = {}
    for i in range(items):
        f1, f2 = 200 + 300 * torch.rand(2, generator=g)
        data[f"m{i}"] = {"s1": torch.sin(2 * torch.pi * f1 * t * (1 + t)),
                         "s2": 0.5 * torch.sign(torch.sin(2 * torch.pi * 3 * f2 * t))}
    dataset = DynamicItemDataset({k: {"index": k} for k in data})

    @sb.utils.data_pipeline.takes("index")
    @sb.utils.data_pipeline.provides("mix_sig", "s1_sig", "s2_sig")
    def audio(index):
        s1, s2 = data[index]["s1"], data[index]["s2"]
        yield s1 + s2
        yield s1
        yield s2

    dataset.add_dynamic_item(audio)
    dataset.set_output_keys(["id", "mix_sig", "s1_sig", "s2_sig"])
    return dataset


def test_trains_as_the_masknet_of_a_speechbrain_separation_recipe():
    torch.manual_seed(0)
    hparams = load_hyperpyyaml(RECIPE_YAML)
    brain = Separation(modules=hparams["modules"], opt_class=hparams["opt_class"],
                       hparams=hparams, run_opts={"device": "cpu"})
    data = two_speaker_set()
    loader = {"batch_size": 2}
    before = brain.evaluate(data, test_loader_kwargs=loader, progressbar=False)
    brain.fit(range(1, 9), data, train_loader_kwargs={**loader, "shuffle": False},
              progressbar=False)
    after = brain.evaluate(data, test_loader_kwargs=loader, progressbar=False)
    assert after < before - 10.0, (before, after)  # -SI-SNR in dB: 10 dB better at least


def test_softmax_masks_split_the_encoded_mixture():
    """With masks summing to 1 across sources and SpeechBrain's linear decoder, the estimates add
    up to the decoded mixture features."""
    from speechbrain.lobes.models.dual_path import Decoder, Encoder

    encoder = Encoder(kernel_size=16, out_channels=32)
    decoder = Decoder(in_channels=32, out_channels=1, kernel_size=16, stride=8, bias=False)
    masker = BSRNNMasker(32, 3, band_channels=[4, 4, 8, 16], feature_dim=8, hidden_dim=8,
                         num_blocks=1, mask_activation="softmax").eval()
    mix = torch.randn(2, 1203)
    with torch.no_grad():
        feats = encoder(mix)
        masks = masker(feats)  # [S, B, N, T']
        torch.testing.assert_close(masks.sum(0), torch.ones_like(feats))
        est = torch.stack([decoder(feats * m) for m in masks], dim=-1)  # [B, T, S]
        torch.testing.assert_close(est.sum(-1), decoder(feats), atol=1e-5, rtol=1e-5)
    assert masker.bins == [(0, 2), (2, 4), (4, 8), (8, 16)]  # widths in channel pairs


def test_masks_follow_the_documented_channel_layout():
    """Channel ``2j + c`` is part ``c`` of pair ``j``: the masker equals BSRNN's band layers run
    on the channel pairs as complex bins, with the mask of pair ``j``, part ``c`` on channel
    ``2j + c``."""
    masker = BSRNNMasker(12, 2, band_channels=4, feature_dim=8, hidden_dim=8, num_blocks=2,
                         mask_activation="linear").eval()
    feats = torch.randn(3, 12, 7)
    with torch.no_grad():
        spec = torch.complex(feats[:, 0::2], feats[:, 1::2])  # [B, 6, T']
        pairs = band_masks(masker, spec)  # [B, S, 6, T', 2]
        got = masker(feats)  # [S, B, 12, T']
    for j in range(6):
        for c in range(2):
            torch.testing.assert_close(got[:, :, 2 * j + c], pairs[:, :, j, :, c].transpose(0, 1))


def test_items_are_independent_and_any_length_works():
    masker = BSRNNMasker(16, 2, band_channels=8, feature_dim=8, hidden_dim=8,
                         num_blocks=1).eval()
    feats = torch.randn(3, 16, 11)
    with torch.no_grad():
        together = masker(feats)
        alone = masker(feats[1:2])
        one_frame = masker(feats[:, :, :1])
    torch.testing.assert_close(together[:, 1:2], alone, atol=1e-6, rtol=1e-5)
    assert one_frame.shape == (2, 3, 16, 1) and bool((together >= 0).all())  # relu masks
    assert masker(feats.bfloat16()).dtype == torch.bfloat16


def test_bsrnn_is_one_line_in_a_speechbrain_compute_forward():
    """BSRNN's complex masks do not fit the elementwise recipe; the whole separator does:
    ``est_source = separator(mix)`` is SpeechBrain's ``[B, T, S]`` layout for its PIT loss."""
    separator = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
                      band_plan="speech", feature_dim=4, hidden_dim=4, num_blocks=1)
    mix, targets = torch.randn(2, 1001), torch.randn(2, 1001, 2)
    est_source = separator(mix)
    loss = get_si_snr_with_pitwrapper(targets, est_source)  # [B]
    assert est_source.shape == targets.shape and loss.shape == (2,)
    loss.mean().backward()
    assert all(p.grad is not None for p in separator.parameters())


@pytest.mark.parametrize("kwargs,message", [
    ({"band_channels": 3}, "even width that divides enc_channels=16"),
    ({"band_channels": 6}, "even width that divides enc_channels=16"),
    ({"band_channels": [8, 4]}, "even band widths summing to enc_channels=16"),
    ({"band_channels": [8, 5, 3]}, "even band widths summing to enc_channels=16"),
    ({"mask_activation": "gelu"}, "mask_activation must be one of"),
])
def test_bad_configurations_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BSRNNMasker(16, 2, **kwargs)
    expected = r"expected encoder features \[B, 16, T'\] \(floating point\), got torch.int64"
    with pytest.raises(ValueError, match=expected):
        BSRNNMasker(16, 2)(torch.zeros(2, 16, 4, dtype=torch.long))
