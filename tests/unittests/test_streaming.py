"""Streaming separation (issue #28): causal BSRNN streamed equals its full forward; the
``StreamingSeparator`` wrapper's delay, latency and bad input; non-causal models unchanged."""

import pytest
import torch

from gass_modules.inference.streaming import StreamingSeparator
from gass_modules.lobes.bsrnn import BSRNN
from gass_modules.lobes.parts.blocks import ISTFTDecoder, STFTEncoder
from gass_modules.lobes.parts.causal import ResidualLSTM, StreamingSTFT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATE = 8000


def causal_model(seed: int = 0, **overrides) -> BSRNN:
    """The demo-size STFT (32-ms window, 8-ms hop at 8 kHz) on a narrow causal BSRNN."""
    torch.manual_seed(seed)
    kwargs = dict(num_sources=3, sample_rate=RATE, n_fft=256, hop_length=64, band_plan="gass",
                  feature_dim=16, hidden_dim=16, num_blocks=2, mask_hidden_dim=32, causal=True)
    kwargs.update(overrides)
    return BSRNN(**kwargs).eval()


@pytest.mark.parametrize("hop_ms", [10, 20, 40])
def test_streamed_output_equals_the_full_causal_forward(hop_ms):
    """At hops of 10/20/40 ms the streamed, aligned outputs equal ``forward`` on the whole
    signal (max abs difference <= 1e-5), except the last ``lookahead`` samples, which equal
    ``forward`` on the signal followed by silence (a stream does not know it ends)."""
    model = causal_model()
    live = StreamingSeparator(model, hop=hop_ms / 1000)
    assert live.hop == RATE * hop_ms // 1000
    mix = 0.3 * torch.randn(1, 6001)
    with torch.no_grad():
        full = model(mix)
        padded = model(torch.cat([mix, torch.zeros(1, 2 * model.lookahead)], dim=1))[:, :6001]
    out = live.separate(mix)
    assert out.shape == (1, 6001, 3)
    body = 6001 - model.lookahead
    assert float((out[:, :body] - full[:, :body]).abs().max()) <= 1e-5
    assert float((out - padded).abs().max()) <= 1e-5


def test_process_takes_any_amounts_and_returns_at_a_fixed_delay():
    """Uneven chunks give the same samples as whole hops; after ``N`` input samples exactly
    ``hop * floor(N / hop) - delay`` outputs are out (never fewer, never more)."""
    model = causal_model()
    live = StreamingSeparator(model, hop=0.01)
    mix = torch.randn(1, 4000)
    reference = live.separate(mix)
    sizes = [1, 7, 80, 333, 1000, 2, 79, 1498, 1000]
    got, received, returned = [], 0, 0
    for size in sizes:
        piece = mix[:, received:received + size]
        received += piece.shape[1]
        out = live.process(piece)
        returned += out.shape[1]
        assert returned == max(0, received // live.hop * live.hop - live.delay)
        got.append(out)
    got.append(live.finish())
    assert torch.allclose(torch.cat(got, dim=1), reference, atol=1e-6, rtol=0)


def test_latency_is_the_hop_plus_the_delay_and_covers_the_lookahead():
    """The reported latency is (hop + delay) / rate; the delay is at least the look-ahead not
    covered by the hop, and at hops that are multiples of the STFT hop it is the window minus
    the STFT hop (the textbook STFT latency: the window, n_fft, at hop = STFT hop)."""
    model = causal_model()
    for hop in (64, 128, 320):
        live = StreamingSeparator(model, hop=hop)
        assert live.delay == 256 - 64
        assert live.latency == pytest.approx((hop + 256 - 64) / RATE)
    for hop in (80, 160):  # 10 and 20 ms: not multiples of the 8-ms frame hop
        live = StreamingSeparator(model, hop=hop)
        assert live.delay + live.hop >= model.lookahead


def test_streams_of_a_batch_are_independent_and_keep_their_order():
    """Two streams separated together equal each alone; output k stays output k (no
    re-ordering between hops: the outputs equal one forward pass over the whole signal)."""
    model = causal_model()
    mix = torch.randn(2, 3000)
    both = StreamingSeparator(model, hop=160, batch=2).separate(mix)
    alone = StreamingSeparator(model, hop=160).separate(mix[1:])
    assert torch.allclose(both[1:], alone, atol=1e-6, rtol=0)


def test_bad_input_is_refused_with_a_message():
    """Non-causal models, bad hops, wrong batches and NaN samples raise clear errors."""
    model = causal_model()
    with pytest.raises(TypeError, match="not causal"):
        StreamingSeparator(causal_model(causal=False))
    with pytest.raises(TypeError, match="not causal"):
        causal_model(causal=False).init_state(1)
    for hop in (0, -0.01, float("nan")):
        with pytest.raises(ValueError, match="hop"):
            StreamingSeparator(model, hop=hop)
    live = StreamingSeparator(model, hop=80)
    with pytest.raises(ValueError, match=r"expected a float chunk \[1, n\]"):
        live.process(torch.zeros(2, 80))
    with pytest.raises(ValueError, match="NaN or Inf"):
        live.process(torch.full((1, 80), float("nan")))
    state = model.init_state(2)
    with pytest.raises(ValueError, match="state does not belong"):
        model.forward_streaming(torch.zeros(1, 64), state)
    with pytest.raises(ValueError, match="causal must be True or False"):
        causal_model(causal="yes")


def test_non_causal_bsrnn_is_unchanged_by_the_causal_option():
    """``causal=False`` (the default) builds the same parameters in the same order as before
    the option existed, so a seed gives the same model and the same outputs: the values below
    were computed by the code before #28 (main at 7591cb5) with this seed and input."""
    torch.manual_seed(0)
    model = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32, band_plan="speech",
                  feature_dim=8, hidden_dim=8, num_blocks=2).eval()
    torch.manual_seed(1)
    mix = torch.randn(2, 700)
    with torch.no_grad():
        out = model(mix)
    assert not model.causal and model.lookahead is None
    expected = torch.tensor(NON_CAUSAL_REFERENCE)
    assert torch.allclose(out[:, ::97].flatten()[:24], expected, atol=1e-6, rtol=0)
    assert float(out.abs().sum()) == pytest.approx(NON_CAUSAL_ABS_SUM, rel=1e-5)


def test_residual_lstm_streams_and_exports():
    """The causal sequence layer: chunks with a carried state equal one call; its scan form
    (used by ``torch.export``) equals nn.LSTM."""
    from gass_modules.lobes.parts.causal import _scan_lstm

    torch.manual_seed(0)
    layer = ResidualLSTM(6, 5).eval()
    x = torch.randn(4, 11, 6)
    with torch.no_grad():
        whole = layer(x)
        state = layer.init_state(4)
        parts = []
        for piece in x.split([3, 0, 1, 7], dim=1):
            y, state = layer.forward_streaming(piece, state)
            parts.append(y)
        scanned = _scan_lstm(layer.norm(x), layer.lstm)
        assert torch.allclose(scanned, layer.lstm(layer.norm(x))[0], atol=1e-6)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-6)


def test_streaming_stft_round_trip_at_any_chunking():
    """Analysis then synthesis, chunk by chunk, reconstructs the input exactly (delayed)."""
    enc = STFTEncoder(128, 32)
    stream = StreamingSTFT(enc.stft.window, 32)
    x = torch.randn(2, 1000)
    state = stream.init_state(2)
    outs = []
    for piece in x.split([5, 300, 1, 694], dim=1):
        outs.append(stream.synthesise(stream.analyse(piece, state).unsqueeze(1), state))
    out = torch.cat(outs, -1)[:, 0]
    assert out.shape[1] >= 1000 - 128
    assert torch.allclose(out, x[:, :out.shape[1]], atol=1e-5)
    full = ISTFTDecoder(128, 32)(enc(x))
    assert torch.allclose(out, full[:, :out.shape[1]], atol=1e-5)


# computed with the code before #28 (main at 7591cb5), see the test above
NON_CAUSAL_REFERENCE = [
    -0.157625, 0.0958539, 0.2184509, -0.1255862, -0.1493814, 0.0647201, 0.2193895, -0.0066642,
    -0.0660274, 0.0118005, -0.1398171, 0.0279484, -0.0823639, 0.2158369, 0.0876218, -0.0370338,
    -0.1252623, 0.0963117, 0.1005876, 0.0210272, -0.0060649, 0.0641474, -0.0145922, -0.0016908]
NON_CAUSAL_ABS_SUM = 262.87518310546875


@pytest.mark.parametrize("rates", [(8000, 16000), (16000, 8000), (44100, 16000), (8000, 8000)])
def test_streaming_resampler_equals_whole_signal_resampling(rates):
    """Block by block, with margins, the resampled stream equals torchaudio on the whole
    signal (any chunking, up- and down-sampling, odd ratios)."""
    import torchaudio

    from gass_modules.inference.streaming import StreamingResampler

    x = torch.randn(2, 4410)
    rs = StreamingResampler(*rates, batch=2)
    outs = [rs.process(c) for c in x.split([1, 500, 3, 2000, 1906], dim=1)] + [rs.finish()]
    out = torch.cat(outs, dim=1)
    reference = torchaudio.functional.resample(x, *rates)
    assert out.shape == reference.shape
    assert torch.allclose(out, reference, atol=1e-5)


class StreamingASRDouble:
    """A test double with SpeechBrain's ``StreamingASR`` streaming interface
    (``make_streaming_context``, ``get_chunk_size_frames``, ``transcribe_chunk``): SpeechBrain
    builds a real one only from a pretrained folder (tokenizer, transducer hparams), which
    would need downloads. It records every chunk and "transcribes" a chunk as `` w<k>`` when
    its row is not silent (k: the chunk's index), so the words show which chunks carried what.
    """

    audio_normalizer = type("Norm", (), {"sample_rate": 16000})()

    def __init__(self) -> None:
        self.chunks, self.lens = [], []

    def make_streaming_context(self, config):
        return {"config": config, "calls": 0}

    def get_chunk_size_frames(self, config) -> int:
        return 640 * config.chunk_size  # (stride - 1) * chunk_size, as StreamingASR's

    def transcribe_chunk(self, context, chunk, chunk_len=None):
        assert chunk.shape[1] == self.get_chunk_size_frames(context["config"])
        self.chunks.append(chunk.clone())
        self.lens.append(chunk_len.clone())
        k = context["calls"]
        context["calls"] += 1
        return [f" w{k}" if float(row.abs().max()) > 1e-4 else "" for row in chunk]


def test_separate_then_transcribe_streams_into_a_streaming_asr():
    """``transcribe_stream`` feeds each output, resampled to 16 kHz, chunk by chunk to the
    streaming ASR: the chunks it received join into exactly the streamed separation resampled
    as a whole; the transcripts gather each active output's words, in order."""
    import torchaudio
    from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

    from gass_modules.asr.transcribe import SeparateThenTranscribe
    from gass_modules.inference.separator import GASSSeparator

    model = causal_model()
    sep = GASSSeparator(modules={"separator": model},
                        hparams={"sample_rate": RATE, "num_sources": 3}, run_opts={"device": "cpu"})
    asr = StreamingASRDouble()
    stt = SeparateThenTranscribe(sep, asr)
    mix = 0.3 * torch.randn(5000)
    heard = []
    config = DynChunkTrainConfig(chunk_size=2, left_context_size=4)
    results = stt.transcribe_stream(mix.split(333), config, hop=0.02,
                                    on_text=lambda s, w: heard.append((s, w)))
    expected = torchaudio.functional.resample(
        StreamingSeparator(model, hop=0.02).separate(mix[None])[0].T, RATE, 16000)  # [S, T']
    fed = torch.cat(asr.chunks, dim=1)  # [S, chunks * 1280]
    assert fed.shape[1] == -(-expected.shape[1] // 1280) * 1280
    assert torch.allclose(fed[:, :expected.shape[1]], expected, atol=1e-5)
    assert not fed[:, expected.shape[1]:].any()  # the last chunk is zero-padded
    assert asr.lens[-1][0] == pytest.approx((expected.shape[1] % 1280 or 1280) / 1280)
    assert all(float(v) == 1.0 for lens in asr.lens[:-1] for v in lens)
    assert heard and results and {r.index for r in results} <= {0, 1, 2}
    for r in results:
        assert r.text == "".join(w for s, w in heard if s == r.index)
    with pytest.raises(TypeError, match="not causal"):
        SeparateThenTranscribe(GASSSeparator(
            modules={"separator": causal_model(causal=False)},
            hparams={"sample_rate": RATE, "num_sources": 3}, run_opts={"device": "cpu"}),
            asr).transcribe_stream([mix], config)


def test_gass_separate_stream_writes_stems_from_a_file_and_from_stdin(tmp_path, monkeypatch):
    """``gass-separate --stream``: a causal model folder separates a file (at its own rate,
    hop by hop) and raw PCM on stdin into one stem per output with the input's length; the
    stems equal the streamed separation; a non-causal folder is refused with status 2."""
    import io
    import sys

    import soundfile as sf

    from gass_modules.inference.cli import main
    from gass_modules.model_folder.folder import save_model_folder

    model = causal_model()
    folder = tmp_path / "model"
    save_model_folder(model, folder)
    mix = 0.2 * torch.randn(4000)
    sf.write(tmp_path / "a.wav", mix.numpy(), RATE, subtype="FLOAT")
    out = tmp_path / "out"
    assert main([str(tmp_path / "a.wav"), "--stream", "--model", str(folder), "--out", str(out),
                 "--hop-ms", "10"]) == 0
    stems = [sf.read(out / f"a_s{k}.wav", dtype="float32")[0] for k in (1, 2, 3)]
    expected = StreamingSeparator(model, hop=80).separate(mix[None])[0]  # [T, S]
    got = torch.from_numpy(__import__("numpy").stack(stems, -1))
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-6)
    pcm = (mix.clamp(-1, 1) * 32767).round().short().numpy().tobytes()
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(pcm)})())
    assert main(["-", "--stream", "--model", str(folder), "--out", str(out)]) == 0
    assert sf.info(out / "stdin_s1.wav").frames == 4000
    # a done input without --overwrite: skipped (status 0, #27 item 13), nothing is replaced
    before = (out / "a_s1.wav").read_bytes()
    assert main([str(tmp_path / "a.wav"), "--stream", "--model", str(folder), "--out",
                 str(out)]) == 0
    assert (out / "a_s1.wav").read_bytes() == before
    save_model_folder(causal_model(causal=False), tmp_path / "offline")
    assert main([str(tmp_path / "a.wav"), "--stream", "--model", str(tmp_path / "offline"),
                 "--out", str(out)]) == 2
    assert main([str(tmp_path / "a.wav"), "--stream", "--model", str(folder), "--out", str(out),
                 "--hop-ms", "0"]) == 2


# ---- causal TDANet-STFT (#28): the multi-scale block streamed, scale by scale ----


def causal_tdanet(seed: int = 0, **overrides):
    """A small causal TDANet-STFT at the demo's STFT (8 kHz, 32-ms window, 8-ms hop) with
    complex features and masks (the card has magnitude ones) and a 2-frame look-back, so
    that the bound on the attention is reached within a second."""
    from gass_modules.lobes.tdanet import TDANetSTFT

    torch.manual_seed(seed)
    kwargs = dict(num_sources=3, sample_rate=RATE, n_fft=256, hop_length=64,
                  bottleneck_channels=16, hidden_channels=32, depth=3, num_blocks=2,
                  num_heads=4, causal=True, attention_lookback=2)
    kwargs.update(overrides)
    return TDANetSTFT(**kwargs).eval()


@pytest.mark.parametrize("chunk", [1, 37, 64, 500, 3001])
def test_causal_tdanet_streamed_equals_its_full_forward(chunk):
    """Chunks of any size (one sample, not aligned with the 64-sample hop nor the 512-sample
    coarse frame, several coarse frames at once) give what ``forward`` gives on the whole
    signal, max abs difference <= 1e-5, over 12 coarse frames (6x the look-back)."""
    model = causal_tdanet()
    length = 6000 if chunk > 1 else 1500
    mix = 0.5 * torch.randn(2, length)
    with torch.no_grad():
        full = model(mix)
        state = model.init_state(2)
        outs = [model.forward_streaming(p, state)[0] for p in mix.split(chunk, dim=1)]
    streamed = torch.cat(outs, dim=1)
    assert length - model.lookahead - 1 <= streamed.shape[1] <= length
    assert float((streamed - full[:, :streamed.shape[1]]).abs().max()) <= 1e-5
    assert float(streamed.abs().max()) > 1e-3  # not vacuous


def test_causal_tdanet_through_the_streaming_separator():
    """``StreamingSeparator`` at a 20-ms hop gives the full causal forward on all but the
    look-ahead, and the forward on the signal followed by silence on all of it."""
    model = causal_tdanet()
    mix = 0.3 * torch.randn(1, 5001)
    with torch.no_grad():
        full = model(mix)
        padded = model(torch.cat([mix, torch.zeros(1, 2 * model.lookahead)], dim=1))[:, :5001]
    out = StreamingSeparator(model, hop=0.02).separate(mix)
    body = 5001 - model.lookahead
    assert float((out[:, :body] - full[:, :body]).abs().max()) <= 1e-5
    assert float((out - padded).abs().max()) <= 1e-5


def test_causal_global_attention_is_a_sliding_window_of_the_unmasked_one():
    """Brute force: frame ``t`` of the masked attention equals the unmasked attention run on
    frames ``t - lookback + 1 .. t`` alone (its last frame); no positional encoding."""
    from gass_modules.lobes.parts.attention import GlobalAttention
    from gass_modules.lobes.parts.causal import lookback_mask

    torch.manual_seed(0)
    ga = GlobalAttention(channels=8, num_heads=2, causal=True, lookback=3).eval()
    x = torch.randn(2, 12, 8)
    with torch.no_grad():
        query = ga.norm(x)
        masked = ga.attention(query, lookback_mask(12, 3))
        for t in range(12):
            window = query[:, max(0, t - 2):t + 1]
            assert torch.allclose(masked[:, t], ga.attention(window)[:, -1], atol=1e-6)
        changed = x.clone()
        changed[:, :3] = torch.randn(2, 3, 8)
        # frame 2 reaches attention outputs 2-4 (look-back 3), which reach FFN outputs 2-8
        # (its causal 5-tap convolution): frames >= 9 do not see the change, frame 8 does
        diff = (ga(changed) - ga(x)).abs().amax(dim=(0, 2))
    assert not hasattr(ga, "positions")
    assert float(diff[9:].max()) == 0.0 and float(diff[8]) > 1e-4


def test_causal_mean_pool_against_loops():
    """Each coarse frame is the mean of the ``factor`` fine frames ending at its own
    position (zeros before the first frame)."""
    from gass_modules.lobes.parts.causal import causal_mean_pool

    x = torch.randn(2, 12, 3)
    for factor in (1, 2, 4):
        got = causal_mean_pool(x, factor)
        for c in range(12 // factor):
            frames = [x[:, j] if j >= 0 else torch.zeros(2, 3)
                      for j in range(factor * c - factor + 1, factor * c + 1)]
            assert torch.allclose(got[:, c], torch.stack(frames).mean(0), atol=1e-6)


def test_causal_tdanet_refuses_bad_options_and_non_causal_twin_is_unchanged():
    """``causal`` must be a bool; the non-causal TDANet-STFT gives the outputs of the code
    before the causal option (values computed with main at b687dc0, this seed and input)."""
    from gass_modules.lobes.tdanet import TDANetSTFT

    with pytest.raises(ValueError, match="causal must be True or False"):
        causal_tdanet(causal="yes")
    with pytest.raises(ValueError, match="lookback"):
        causal_tdanet(attention_lookback=0)
    torch.manual_seed(0)
    model = TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                       bottleneck_channels=16, hidden_channels=32, depth=2, num_blocks=2,
                       num_heads=4).eval()
    with pytest.raises(TypeError, match="not causal"):
        model.init_state(1)
    torch.manual_seed(1)
    mix = torch.randn(2, 700)
    with torch.no_grad():
        out = model(mix)
    assert not model.causal and model.lookahead is None
    assert torch.allclose(out[:, ::97].flatten()[:24], torch.tensor(TDANET_REFERENCE),
                          atol=1e-6, rtol=0)
    assert float(out.abs().sum()) == pytest.approx(1226.24853515625, rel=1e-5)


# computed with the code before the causal TDANet (main at b687dc0), see the test above
TDANET_REFERENCE = [
    0.1124417, 0.151615, 0.4746944, 0.3211481, 0.2820484, 0.1664003, -0.2279676, 0.2639101,
    0.4969381, -0.0794043, -0.8468155, -0.4939766, -0.3857243, 0.1826796, -1.4765785, 0.7911081,
    -0.4332761, -0.4064526, -0.9187638, 0.2363331, -0.4132686, -0.6978262, -0.3605445,
    -0.5475995]


def test_stream_overwrite_replaces_only_what_gass_separate_recorded(tmp_path):
    """#27's rule on ``--stream``: a user's ``a_s3.wav`` (no report records it) survives a
    ``--stream --overwrite`` run, which fails that input (status 1) before writing anything; a
    stream's own stems are recorded in ``a.json`` and replaced by the next ``--overwrite`` run;
    a ``a.json`` that is not a report is never written over."""
    import json

    import soundfile as sf

    from gass_modules.inference.cli import main
    from gass_modules.model_folder.folder import save_model_folder

    model = causal_model()
    folder = tmp_path / "model"
    save_model_folder(model, folder)
    sf.write(tmp_path / "a.wav", (0.2 * torch.randn(2000)).numpy(), RATE, subtype="FLOAT")
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "a_s3.wav"
    sf.write(mine, torch.ones(100).numpy(), RATE)
    before = mine.read_bytes()
    run = [str(tmp_path / "a.wav"), "--stream", "--model", str(folder), "--out", str(out),
           "--overwrite"]
    assert main(run) == 1
    assert mine.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["a_s3.wav"]  # nothing else written
    mine.rename(tmp_path / "kept.wav")
    assert main(run) == 0
    report = json.loads((out / "a.json").read_text())
    assert [s["file"] for s in report["sources"]] == ["a_s1.wav", "a_s2.wav", "a_s3.wav"]
    (out / "a_s2.wav").write_bytes(b"stale")  # our own file, recorded: replaced
    assert main(run) == 0
    assert sf.info(out / "a_s2.wav").frames == 2000
    (out / "a.json").write_text('{"takes": 3}')  # a user's notes now hold the name
    assert main(run) == 1
    assert (out / "a.json").read_text() == '{"takes": 3}'


def test_the_bundled_causal_model_streams_and_is_the_stream_default(tmp_path):
    """GASS-mini causal ships (gass_mini_causal.yaml, tools/bundle_model.py): it loads by name
    through the safe loader, is causal at GASS-mini's rate, its stream equals its full forward
    (1e-5), and ``gass-separate --stream`` without ``--model`` uses it, writing the streamed
    stems; without ``--stream`` the default stays GASS-mini."""
    import numpy as np
    import soundfile as sf

    from gass_modules.inference.cli import main
    from gass_modules.inference.separator import GASSSeparator
    from gass_modules.model_folder import pretrained

    assert "gass-mini-causal" in pretrained.bundled_models_present()
    assert pretrained.default_model() != "gass-mini-causal"
    model = GASSSeparator.from_hparams(source="gass-mini-causal", run_opts={"device": "cpu"})
    separator = model.mods.separator
    assert separator.causal and separator.sample_rate == 8000 and separator.num_sources == 4
    mix = 0.2 * torch.randn(1, 8000)
    with torch.no_grad():
        padded = separator(torch.cat([mix, torch.zeros(1, 2 * separator.lookahead)], 1))
    streamed = StreamingSeparator(separator, hop=0.02).separate(mix)
    assert float((streamed - padded[:, :8000]).abs().max()) <= 1e-5
    sf.write(tmp_path / "a.wav", mix[0].numpy(), 8000, subtype="FLOAT")
    assert main([str(tmp_path / "a.wav"), "--stream", "--out", str(tmp_path / "out"),
                 "--hop-ms", "20"]) == 0
    stems = np.stack([sf.read(tmp_path / "out" / f"a_s{k}.wav", dtype="float32")[0]
                      for k in range(1, 5)], -1)
    assert np.allclose(stems, streamed[0].numpy(), atol=1e-5)
