"""Separate, then transcribe: a GASS separator followed by any SpeechBrain ASR interface.

:class:`SeparateThenTranscribe` composes a :class:`~gass_modules.inference.separator.GASSSeparator`
with any
SpeechBrain ASR interface (``EncoderASR``, ``EncoderDecoderASR``: anything with
``transcribe_batch(wavs, wav_lens)``) and returns one :class:`StreamTranscript` per active
stream, most speech-like first (:class:`~gass_modules.asr.intonation.IntonationScore` by default).

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio
from torch import nn

from gass_modules.asr.intonation import IntonationScore
from gass_modules.audio import DEFAULT_THRESHOLD_DB, source_activity
from gass_modules.inference.streaming import StreamingResampler, StreamingSeparator
from gass_modules.lengths import absolute_lengths, length_mask
from gass_modules.lobes.base import check_mixture


@dataclass
class StreamTranscript:
    """One active separated stream and its transcript (from :class:`SeparateThenTranscribe`).

    Arguments
    ---------
    index : int
        Separator output index.
    text : str
        The ASR's transcript of the stream.
    speech_score : float
        The scorer's value (intonation score by default).
    energy_db : float
        Energy relative to the mixture (dB).
    is_speech : bool
        ``speech_score >= speech_threshold``.

    Example
    -------
    >>> StreamTranscript(2, "hello", 0.4, -3.0, True).text
    'hello'
    """

    index: int
    text: str
    speech_score: float
    energy_db: float
    is_speech: bool


class SeparateThenTranscribe:
    """A GASS separator followed by any SpeechBrain ASR: one transcript per active stream.

    The mixture is separated (any length and rate, see ``GASSSeparator``), outputs under
    ``activity_db`` are dropped, the others are resampled to the ASR's rate, scored as speech
    (``scorer``) and transcribed with ``asr.transcribe_batch(wavs, wav_lens)``. Streams come
    back most speech-like first, each flagged ``is_speech`` by ``speech_threshold``; with
    ``speech_only`` the streams under it are not sent to the ASR at all.

    Arguments
    ---------
    separator : gass_modules.inference.separator.GASSSeparator
        Loaded with ``GASSSeparator.from_hparams(source=model_folder)``.
    asr : object
        ``EncoderASR``, ``EncoderDecoderASR`` or anything with ``transcribe_batch(wavs
        [N, T], wav_lens [N]) -> (texts, tokens)``.
    asr_sample_rate : int, optional
        The ASR's input rate; default ``asr.audio_normalizer.sample_rate`` (SpeechBrain
        interfaces have it), else 16000.
    scorer : torch.nn.Module, optional
        Speech scores of ``[N, T]`` streams; default :class:`IntonationScore`.
    activity_db : float
        Activity threshold relative to the mixture (dB).
    speech_threshold : float
        Scores at or over it mark a stream as speech (0.15: see the benchmark).
    speech_only : bool
        Transcribe only the streams marked as speech.
    batch_size : int
        Streams per ``transcribe_batch`` call.

    Example
    -------
    >>> from gass_modules.inference.separator import GASSSeparator  # ScaledCopies: tests/doubles.py
    >>> class LengthASR:  # a stand-in ASR: "transcribes" the number of non-zero samples
    ...     def transcribe_batch(self, wavs, wav_lens):
    ...         n = (wav_lens * wavs.shape[1]).round().long()
    ...         return [f"{int((w[:k] != 0).sum())} samples" for w, k in zip(wavs, n)], None
    >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0, 0.3], 16000)},
    ...                     hparams={"sample_rate": 16000, "num_sources": 3},
    ...                     run_opts={"device": "cpu"})
    >>> stt = SeparateThenTranscribe(sep, LengthASR(), asr_sample_rate=16000)
    >>> out = stt.transcribe_batch(torch.randn(2, 8000), torch.tensor([1.0, 0.5]))
    >>> [[(s.index, s.text) for s in item] for item in out]
    [[(0, '8000 samples'), (2, '8000 samples')], [(0, '4000 samples'), (2, '4000 samples')]]
    """

    def __init__(self, separator: nn.Module, asr: object, asr_sample_rate: int | None = None,
                 scorer: nn.Module | None = None, activity_db: float = DEFAULT_THRESHOLD_DB,
                 speech_threshold: float = 0.15, speech_only: bool = False,
                 batch_size: int = 8) -> None:
        if not hasattr(separator, "separate_batch") or not hasattr(separator,
                                                                    "separate_to_files"):
            raise TypeError(f"expected a GASSSeparator (GASSSeparator.from_hparams(source=...)), "
                            f"got {type(separator).__name__}; wrap a bare lobe as "
                            "GASSSeparator(modules={'separator': lobe}, hparams={...})")
        if not callable(getattr(asr, "transcribe_batch", None)) and not callable(
                getattr(asr, "transcribe_chunk", None)):
            raise TypeError(f"expected an ASR interface with transcribe_batch(wavs, wav_lens) "
                            f"(EncoderASR, EncoderDecoderASR) or transcribe_chunk (StreamingASR, "
                            f"for transcribe_stream), got {type(asr).__name__}")
        if asr_sample_rate is None:
            asr_sample_rate = getattr(getattr(asr, "audio_normalizer", None), "sample_rate",
                                      16000)
        if not isinstance(asr_sample_rate, int) or asr_sample_rate < 1:
            raise ValueError(f"asr_sample_rate must be a positive int (Hz), got "
                             f"{asr_sample_rate!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.separator = separator
        self.asr = asr
        self.asr_sample_rate = asr_sample_rate
        self.scorer = scorer if scorer is not None else IntonationScore(asr_sample_rate)
        self.activity_db = float(activity_db)
        self.speech_threshold = float(speech_threshold)
        self.speech_only = speech_only
        self.batch_size = batch_size

    def transcribe_batch(self, mix: torch.Tensor, wav_lens: torch.Tensor | None = None,
                         sample_rate: int | None = None) -> list[list[StreamTranscript]]:
        """Separates and transcribes a batch of mixtures.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.
        sample_rate : int, optional
            Rate of ``mix`` (default: the ASR's).

        Returns
        -------
        list of list of StreamTranscript
            Per mixture, its active streams, most speech-like first.
        """
        check_mixture(mix)
        rate = self.asr_sample_rate if sample_rate is None else sample_rate
        lengths = absolute_lengths(wav_lens, *mix.shape)
        mask = length_mask(lengths, mix.shape[-1], mix.device)
        mix = mix * mask
        est = self.separator.separate_batch(mix, sample_rate=rate) * mask[..., None]  # [B, T, S]
        energy_db, active = source_activity(mix, est, self.activity_db)  # [B, S]
        streams = [[(est[b, : lengths[b], s], float(energy_db[b, s]), s)
                    for s in range(est.shape[-1]) if active[b, s]] for b in range(mix.shape[0])]
        return self._transcribe(streams, rate)

    def transcribe_file(self, path: str | Path, **separate_kwargs) -> list[StreamTranscript]:
        """Separates an audio file of any length, rate and channel count and transcribes it.

        Arguments
        ---------
        path : str or pathlib.Path
            The file (channels are downmixed).
        **separate_kwargs
            Forwarded to ``GASSSeparator.separate_to_files`` (``chunk_seconds``, ``overlap``).

        Returns
        -------
        list of StreamTranscript
            The active streams, most speech-like first.
        """
        result = self.separator.separate_to_files(path, channels="mix", keep_silent=False,
                                                  threshold_db=self.activity_db,
                                                  **separate_kwargs)
        streams = [(result.sources[0, :, k], result.energy_db[s], s)
                   for k, s in enumerate(result.kept)]
        return self._transcribe([streams], result.sample_rate)[0]

    def transcribe_stream(self, chunks: Iterable[torch.Tensor], streaming_config: object,
                          sample_rate: int | None = None, hop: int | float = 0.02,
                          on_text: Callable[[int, str], None] | None = None,
                          ) -> list[StreamTranscript]:
        """Separates a live mixture with a causal separator and transcribes every output live.

        The streaming mode (issue #28): the mixture arrives in chunks of any size; a
        :class:`~gass_modules.inference.streaming.StreamingSeparator` separates it hop by hop (the
        separator must be causal, e.g. the ``bsrnn_causal`` card), each output is resampled to
        the ASR's rate as it comes (:class:`~gass_modules.inference.streaming.StreamingResampler`)
        and fed
        chunk by chunk to SpeechBrain's ``StreamingASR`` (``make_streaming_context``,
        ``get_chunk_size_frames``, ``transcribe_chunk``), one ASR stream per separator output,
        batched. Outputs keep their index for the whole stream (no re-ordering between hops).
        When the input ends, outputs under ``activity_db`` are dropped and the others are scored
        and ranked as :meth:`transcribe_batch` ranks them.

        Arguments
        ---------
        chunks : iterable of torch.Tensor
            The mixture, ``[n]`` (or ``[1, n]``) samples at a time, at ``sample_rate``.
        streaming_config : speechbrain.utils.dynamic_chunk_training.DynChunkTrainConfig
            The ASR's chunk size and left context.
        sample_rate : int, optional
            Rate of the chunks (default: the separator's).
        hop : int or float
            The separator's hop (samples or seconds).
        on_text : callable, optional
            Called as ``on_text(output_index, words)`` whenever the ASR returns words.

        Returns
        -------
        list of StreamTranscript
            The active outputs, most speech-like first, with their whole transcripts.
        """
        lobe = getattr(getattr(self.separator, "mods", None), "separator", self.separator)
        asr = self.asr
        if not all(callable(getattr(asr, name, None)) for name in (
                "make_streaming_context", "get_chunk_size_frames", "transcribe_chunk")):
            raise TypeError(f"transcribe_stream needs a StreamingASR interface "
                            f"(make_streaming_context, get_chunk_size_frames, transcribe_chunk), "
                            f"got {type(asr).__name__}")
        live = StreamingSeparator(lobe, hop)  # raises unless the separator is causal
        rate = live.sample_rate if sample_rate is None else sample_rate
        sources = live.num_sources
        to_model = StreamingResampler(rate, live.sample_rate)
        to_asr = StreamingResampler(live.sample_rate, self.asr_sample_rate, batch=sources)
        context = asr.make_streaming_context(streaming_config)
        size = int(asr.get_chunk_size_frames(streaming_config))
        texts = [""] * sources
        mixes, separated, pending = [], [], torch.zeros(sources, 0)

        def feed(est: torch.Tensor, last: bool = False) -> None:
            nonlocal pending
            separated.append(est)  # [m, S] at the separator's rate
            wav = to_asr.process(est.T)  # [S, m']
            pending = torch.cat([pending, wav if not last else torch.cat(
                [wav, to_asr.finish()], dim=1)], dim=1)
            while pending.shape[1] >= size or (last and pending.shape[1] > 0):
                piece = pending[:, :size]
                lens = torch.full((sources,), piece.shape[1] / size)
                piece = nn.functional.pad(piece, (0, size - piece.shape[1]))
                with torch.no_grad():
                    words = asr.transcribe_chunk(context, piece, lens)
                for s, w in enumerate(words):
                    texts[s] += w
                    if w and on_text is not None:
                        on_text(s, w)
                pending = pending[:, size:]

        for chunk in chunks:
            chunk = chunk.reshape(1, -1).float().cpu()  # [1, n]
            x = to_model.process(chunk)
            mixes.append(x[0])
            feed(live.process(x)[0])
        tail = to_model.finish()
        mixes.append(tail[0])
        feed(torch.cat([live.process(tail)[0], live.finish()[0]]), last=True)
        mix = torch.cat(mixes).unsqueeze(0)  # [1, T]
        est = torch.cat(separated).unsqueeze(0)  # [1, T, S]
        energy_db, active = source_activity(mix, est, self.activity_db)  # [1, S]
        kept = [s for s in range(sources) if active[0, s]]
        if not kept:
            return []
        wavs, rel = _pad([self._to_asr_rate(est[0, :, s], live.sample_rate) for s in kept])
        scores = self.scorer(wavs, rel).tolist()
        results = [StreamTranscript(s, texts[s], sc, float(energy_db[0, s]),
                                    sc >= self.speech_threshold)
                   for s, sc in zip(kept, scores)
                   if not self.speech_only or sc >= self.speech_threshold]
        results.sort(key=lambda r: (-r.speech_score, -r.energy_db))
        return results

    def _transcribe(self, items: list[list[tuple[torch.Tensor, float, int]]],
                    rate: int) -> list[list[StreamTranscript]]:
        """Resamples, scores and transcribes ``(stream [n], energy_db, index)`` per item."""
        flat = [(b, wav, energy, s) for b, streams in enumerate(items)
                for wav, energy, s in streams]
        results: list[list[StreamTranscript]] = [[] for _ in items]
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start:start + self.batch_size]
            wavs, rel = _pad([self._to_asr_rate(wav, rate) for _, wav, _, _ in chunk])
            scores = self.scorer(wavs, rel).tolist()  # [n]
            keep = [i for i, sc in enumerate(scores)
                    if not self.speech_only or sc >= self.speech_threshold]
            texts: Sequence = []
            if keep:
                sub, sub_rel = _pad([wavs[i, : max(1, round(float(rel[i]) * wavs.shape[1]))]
                                     for i in keep])
                with torch.no_grad():
                    texts = self.asr.transcribe_batch(sub, sub_rel)[0]
            for j, i in enumerate(keep):
                b, _, energy, s = chunk[i]
                text = texts[j] if isinstance(texts[j], str) else " ".join(texts[j])
                results[b].append(StreamTranscript(s, text, scores[i], energy,
                                                   scores[i] >= self.speech_threshold))
        for streams in results:
            streams.sort(key=lambda r: (-r.speech_score, -r.energy_db))
        return results

    def _to_asr_rate(self, wav: torch.Tensor, rate: int) -> torch.Tensor:
        """``[n]`` at ``rate`` -> ``[n']`` at the ASR's rate (torchaudio)."""
        wav = wav.detach().float().cpu()
        if rate == self.asr_sample_rate:
            return wav
        return torchaudio.functional.resample(wav, rate, self.asr_sample_rate)


def _pad(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pads 1-D waveforms into ``[N, T]`` and their relative lengths ``[N]``."""
    longest = max(1, max(len(w) for w in wavs))
    batch = torch.stack([nn.functional.pad(w, (0, longest - len(w))) for w in wavs])
    return batch, torch.tensor([len(w) / longest for w in wavs])


__all__ = ["SeparateThenTranscribe", "StreamTranscript"]
