"""Live separation with a causal separator: :class:`StreamingSeparator` (issue #28).

A causal card (``causal: true``: ``separator.causal``, ``lookahead``, ``init_state`` and
``forward_streaming``; docs/architecture.md, "Streaming") carries its state from one chunk to
the next, so a stream is separated as it arrives, with a fixed delay, and the outputs equal
the separator's ``forward`` on the whole signal. Because one model state runs through the whole
stream, output ``k`` is the same source from the first chunk to the last: nothing is permuted
between chunks (unlike :func:`gass_modules.inference.chunking.stream_separation`, which separates
overlapping chunks independently and matches their outputs).

The wrapper takes input in any amounts, runs the separator every ``hop`` samples (the hop
sets the compute granularity: 10-40 ms is usual), and returns every output sample whose delay
has run out. Its :attr:`StreamingSeparator.latency` is the algorithmic latency: from the
arrival of an input sample to the return of its separated samples, with zero compute time
(the wait for the hop's last sample, plus the separator's look-ahead rounded to its frames).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from pathlib import Path
from typing import BinaryIO

import soundfile as sf
import torch
import torchaudio

from gass_modules.audio import FileReader, open_audio
from gass_modules.inference.chunking import check_rate
from gass_modules.inference.output_files import (
    OutputLock,
    Skipped,
    make_folder,
    read_report,
    reported_stems,
    write_text_atomic,
)
from gass_modules.lobes.base import check_positive_int


class StreamingSeparator:
    """Separates live input with a causal separator, hop by hop, at a fixed delay.

    Arguments
    ---------
    separator : torch.nn.Module
        A causal separator (``causal`` true, with ``init_state`` and ``forward_streaming``);
        put it in eval mode. Gradients are not tracked.
    hop : int or float
        Compute granularity: samples (int) or seconds (float, e.g. ``0.02``) at the
        separator's ``sample_rate``.
    batch : int
        Number of streams separated together (items of the batch never interact).

    Example
    -------
    >>> from gass_modules.lobes.bsrnn import BSRNN
    >>> model = BSRNN(num_sources=2, sample_rate=8000, n_fft=256, hop_length=64,
    ...               feature_dim=8, hidden_dim=8, num_blocks=1, causal=True).eval()
    >>> live = StreamingSeparator(model, hop=0.02)  # 160 samples
    >>> live.hop, live.delay, round(live.latency * 1000, 1)  # ms
    (160, 224, 48.0)
    >>> x = torch.randn(1, 8000)
    >>> outs = [live.process(c) for c in x.split(100, dim=1)]  # any amounts
    >>> out = torch.cat(outs + [live.finish()], dim=1)  # [B, T, S], aligned with the input
    >>> out.shape, bool((out[:, :7000] - model(x)[:, :7000]).abs().max() < 1e-5)
    (torch.Size([1, 8000, 2]), True)
    """

    def __init__(self, separator: torch.nn.Module, hop: int | float = 0.02,
                 batch: int = 1) -> None:
        if not getattr(separator, "causal", False):
            raise TypeError(f"{type(separator).__name__} is not causal, so it cannot stream; "
                            "use a causal card (causal: true in hparams/models, e.g. "
                            "bsrnn_causal.yaml) or "
                            "gass_modules.inference.chunking.stream_separation for "
                            "chunk-by-chunk separation with a non-causal model")
        rate = separator.sample_rate
        if isinstance(hop, float):
            if not math.isfinite(hop) or hop <= 0:
                raise ValueError(f"hop must be a positive duration in seconds, got {hop!r}")
            hop = max(1, round(hop * rate))
        check_positive_int(hop=hop, batch=batch)
        self.separator = separator
        self.sample_rate = rate
        self.num_sources = separator.num_sources
        self.hop = hop
        self.batch = batch
        self.delay = self._measure_delay()
        self.reset()

    @property
    def latency(self) -> float:
        """Algorithmic latency in seconds: ``(hop + delay) / sample_rate``.

        An input sample waits at most ``hop`` samples for its hop to complete, and its output
        comes out ``delay`` samples after the hop's end (the look-ahead rounded up to what the
        separator's frames finish at each hop).
        """
        return (self.hop + self.delay) / self.sample_rate

    def reset(self) -> None:
        """Starts new streams (the model state and the buffers are cleared)."""
        self._state = self.separator.init_state(self.batch)
        self._pending = torch.zeros(self.batch, 0)  # input not yet a whole hop
        self._outputs: list[torch.Tensor] = []  # separated samples not yet returned
        self._ready = 0  # samples in _outputs
        self._consumed = 0  # input samples run through the separator
        self._returned = 0  # output samples returned

    def _measure_delay(self) -> int:
        """The smallest delay at which every hop's outputs are finished, found by running the
        separator on silence hop by hop (it finishes whatever its frames allow; exact for any
        causal separator whose output counts depend on positions only)."""
        period = self.hop * self.separator.stride // math.gcd(self.hop, self.separator.stride)
        lookahead = self.separator.lookahead or 0
        calls = (2 * period + lookahead + 2 * self.separator.stride) // self.hop + 2
        state = self.separator.init_state(1)
        finished, delay = 0, 0
        with torch.no_grad():
            for k in range(1, calls + 1):
                out, state = self.separator.forward_streaming(torch.zeros(1, self.hop), state)
                finished += out.shape[1]
                delay = max(delay, k * self.hop - finished)
        return delay

    def process(self, chunk: torch.Tensor) -> torch.Tensor:
        """Takes the next input samples and returns the separated samples now due.

        Arguments
        ---------
        chunk : torch.Tensor
            ``[B, n]`` (or ``[n]`` for one stream) samples at ``sample_rate``, any ``n >= 0``.

        Returns
        -------
        torch.Tensor
            ``[B, m, S]`` separated samples continuing the previous ones (``[m, S]`` for a
            ``[n]`` chunk): after ``N`` input samples in all, the first ``N' - delay`` outputs
            are out, ``N'`` the samples of the whole hops among them.
        """
        single = isinstance(chunk, torch.Tensor) and chunk.dim() == 1
        if single:
            chunk = chunk.unsqueeze(0)
        if not isinstance(chunk, torch.Tensor) or chunk.dim() != 2 or (
                chunk.shape[0] != self.batch) or not chunk.is_floating_point():
            raise ValueError(f"expected a float chunk [{self.batch}, n] (the batch this "
                             f"StreamingSeparator was built for), got "
                             f"{getattr(chunk, 'dtype', type(chunk).__name__)} "
                             f"{tuple(getattr(chunk, 'shape', ()))}")
        self._pending = torch.cat([self._pending, chunk.float().cpu()], dim=1)
        blocks = self._pending.shape[1] // self.hop
        if blocks:
            self._run(self._pending[:, :blocks * self.hop])
            self._pending = self._pending[:, blocks * self.hop:]
        out = self._take(max(0, self._consumed - self.delay) - self._returned)
        return out[0] if single else out

    def finish(self) -> torch.Tensor:
        """Ends the streams: returns the outputs of the input not returned yet.

        The remaining input is followed by silence to finish its frames, so the outputs of the
        whole stream have exactly as many samples as its input (the last ``lookahead`` samples
        are separated as if silence followed, as a live stream would be). Call :meth:`reset`
        to start new streams.

        Returns
        -------
        torch.Tensor
            ``[B, m, S]`` the last separated samples.
        """
        total = self._consumed + self._pending.shape[1]
        flush = self.delay + self.hop + self._pending.shape[1]
        self._pending = torch.cat([self._pending, torch.zeros(self.batch, flush)], dim=1)
        blocks = self._pending.shape[1] // self.hop
        self._run(self._pending[:, :blocks * self.hop])
        self._pending = torch.zeros(self.batch, 0)
        return self._take(total - self._returned)

    def separate(self, signal: torch.Tensor) -> torch.Tensor:
        """Streams a whole ``[B, T]`` signal hop by hop (a convenience for files and tests).

        Arguments
        ---------
        signal : torch.Tensor
            ``[B, T]`` mixture at ``sample_rate``.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` separated sources, aligned with the input.
        """
        self.reset()
        outs = [self.process(piece) for piece in signal.split(self.hop, dim=1)]
        out = torch.cat([*outs, self.finish()], dim=1)
        self.reset()
        return out

    def _run(self, samples: torch.Tensor) -> None:
        """Runs the separator on whole hops, queueing what it finishes."""
        param = next(self.separator.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            for block in samples.split(self.hop, dim=1):
                out, self._state = self.separator.forward_streaming(block.to(device),
                                                                     self._state)
                if out.shape[1]:
                    self._outputs.append(out.float().cpu())
                    self._ready += out.shape[1]
                self._consumed += block.shape[1]

    def _take(self, count: int) -> torch.Tensor:
        """Pops the first ``count`` queued output samples."""
        count = min(count, self._ready)
        queued = torch.cat(self._outputs, dim=1) if self._outputs else torch.zeros(
            self.batch, 0, self.num_sources)
        self._outputs = [queued[:, count:]] if count < queued.shape[1] else []
        self._ready -= count
        self._returned += count
        return queued[:, :count]


class StreamingResampler:
    """torchaudio's sinc resampling of a stream, block by block, equal to the whole signal's.

    ``torchaudio.functional.resample`` computes output sample ``k * new + i`` (rates divided by
    their gcd) from the input around sample ``k * orig``, within ``width`` samples of it. A
    stream is resampled in blocks of whole ``orig`` periods, each with ``margin`` samples of
    input either side (zeros before the start, as torchaudio pads), so the outputs equal
    resampling the whole signal; the price is a delay of ``margin`` input samples.
    (Written here because torchaudio has no stateful resampler.)

    Arguments
    ---------
    orig_freq, new_freq : int
        Input and output rates (Hz).
    batch : int
        Number of streams.

    Example
    -------
    >>> x = torch.randn(2, 1000)
    >>> rs = StreamingResampler(8000, 16000, batch=2)
    >>> out = torch.cat([rs.process(c) for c in x.split(77, dim=1)] + [rs.finish()], dim=1)
    >>> out.shape, torch.allclose(out, torchaudio.functional.resample(x, 8000, 16000), atol=1e-5)
    (torch.Size([2, 2000]), True)
    """

    LOWPASS_FILTER_WIDTH = 6  # torchaudio's defaults
    ROLLOFF = 0.99

    def __init__(self, orig_freq: int, new_freq: int, batch: int = 1) -> None:
        check_positive_int(orig_freq=orig_freq, new_freq=new_freq, batch=batch)
        gcd = math.gcd(orig_freq, new_freq)
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.orig, self.new = orig_freq // gcd, new_freq // gcd
        width = math.ceil(self.LOWPASS_FILTER_WIDTH * self.orig
                          / (min(self.orig, self.new) * self.ROLLOFF))
        self.margin = -(-(width + self.orig) // self.orig) * self.orig  # whole periods
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        """Starts new streams."""
        self._buffer = torch.zeros(self.batch, self.margin)  # past margin + pending input
        self._received = 0
        self._emitted = 0

    def process(self, chunk: torch.Tensor) -> torch.Tensor:
        """Takes ``[B, n]`` input samples, returns the ``[B, m]`` output samples now final."""
        if self.orig_freq == self.new_freq:
            return chunk
        self._buffer = torch.cat([self._buffer, chunk.float()], dim=1)
        self._received += chunk.shape[1]
        ready = (self._buffer.shape[1] - 2 * self.margin) // self.orig * self.orig
        if ready <= 0:
            return self._buffer.new_zeros(self.batch, 0)
        return self._resample(ready)

    def finish(self) -> torch.Tensor:
        """Returns the last outputs (the input followed by zeros, as torchaudio pads)."""
        if self.orig_freq == self.new_freq:
            return torch.zeros(self.batch, 0)
        target = math.ceil(self.new * self._received / self.orig)
        pending = self._buffer.shape[1] - self.margin
        ready = -(-pending // self.orig) * self.orig
        self._buffer = torch.cat([self._buffer, torch.zeros(
            self.batch, ready - pending + self.margin)], dim=1)
        out = self._resample(ready) if ready > 0 else self._buffer.new_zeros(self.batch, 0)
        out = out[:, :max(0, target - (self._emitted - out.shape[1]))]
        self.reset()
        return out

    def _resample(self, ready: int) -> torch.Tensor:
        """Resamples the next ``ready`` input samples (whole periods) with their margins."""
        block = self._buffer[:, :ready + 2 * self.margin]
        out = torchaudio.functional.resample(block, self.orig_freq, self.new_freq)
        start = self.margin // self.orig * self.new
        out = out[:, start:start + ready // self.orig * self.new]
        self._buffer = self._buffer[:, ready:]
        self._emitted += out.shape[1]
        return out


#: How often :func:`stream_to_stems` updates its files' headers (each flush rewrites them).
FLUSHES_PER_SECOND = 4


def stream_to_stems(separator: torch.nn.Module, source: str | Path | BinaryIO,
                    out_dir: str | Path, *, name: str = "stream", sample_rate: int | None = None,
                    hop: int | float = 0.02, realtime: bool = False,
                    overwrite: bool = False,
                    protected: frozenset[Path] = frozenset()) -> list[Path]:
    """Separates a live input into stem files written as it goes (``gass-separate --stream``).

    The input is an audio file (read hop by hop; with ``realtime`` no faster than it plays, as
    a live source would deliver it) or a binary stream of raw 16-bit little-endian mono PCM at
    ``sample_rate`` (e.g. ``sys.stdin.buffer`` fed by ``arecord -f S16_LE``). It is resampled
    to the separator's rate and back as it streams (:class:`StreamingResampler`), separated by
    a :class:`StreamingSeparator`, and every output is appended to ``<name>_s<k>.wav`` (float
    WAV, the input's rate) after each hop, so the files grow while the input plays (their
    headers are updated :data:`FLUSHES_PER_SECOND` times per second of audio). All
    ``S`` outputs are written: whether one is silent is known only at the end. Each stem has
    exactly as many samples as the input; output ``k`` is the same source throughout.

    Like the batch ``gass-separate``, the run records what it writes in a ``<name>.json``
    report beside the stems (written before the stems, so that a stream cut short is recorded
    too), and replaces (``overwrite``) only files such a report records: a stem name taken by
    a file no report records (a user's ``<name>_s3.wav``), or a ``<name>.json`` that is not a
    report, fails the run before anything is written, overwrite or not.

    Arguments
    ---------
    separator : torch.nn.Module
        A causal separator (``causal: true`` card), in eval mode.
    source : str, pathlib.Path or binary file object
        An audio file, or raw s16le mono PCM.
    out_dir : str or pathlib.Path
        Folder of the stems (created).
    name : str
        Stem file prefix.
    sample_rate : int, optional
        Rate of raw PCM input (default: the separator's); files give their own.
    hop : int or float
        The separator's hop (samples at its rate, or seconds).
    realtime : bool
        Read a file no faster than real time.
    overwrite : bool
        Replace the stems (and report) of an earlier run (otherwise a ``FileExistsError``).

    Returns
    -------
    list of pathlib.Path
        The stem files, output order.

    Example
    -------
    >>> from gass_modules.lobes.bsrnn import BSRNN
    >>> model = BSRNN(num_sources=2, sample_rate=8000, n_fft=256, hop_length=64,
    ...               feature_dim=8, hidden_dim=8, num_blocks=1, causal=True).eval()
    >>> tmp = getfixture("tmp_path")
    >>> sf.write(tmp / "in.wav", 0.1 * torch.randn(16000).numpy(), 16000)
    >>> stems = stream_to_stems(model, tmp / "in.wav", tmp / "out", name="in")
    >>> [p.name for p in stems], sf.info(stems[0]).frames, sf.info(stems[0]).samplerate
    (['in_s1.wav', 'in_s2.wav'], 16000, 16000)
    """
    live = StreamingSeparator(separator, hop)
    out_dir = Path(out_dir)
    rate = live.sample_rate if sample_rate is None else sample_rate
    check_positive_int(sample_rate=rate)
    paths = [out_dir / f"{name}_s{k + 1}.wav" for k in range(live.num_sources)]
    report = out_dir / f"{name}.json"
    origin = str(Path(source).resolve()) if isinstance(source, (str, Path)) else "-"
    make_folder(out_dir)
    with OutputLock(out_dir, name), contextlib.ExitStack() as stack:
        reader = None
        if isinstance(source, (str, Path)):  # a FIFO or device is refused before opening
            handle = stack.enter_context(open_audio(Path(source)))
            if handle.frames <= 0:
                raise ValueError(f"expected audio, got 0 samples in {source}")
            rate, reader = handle.samplerate, FileReader(handle, str(source))
        check_rate(rate, live.sample_rate)
        _claim_outputs(paths, report, overwrite, origin, protected)
        record = {"input": origin, "model_sample_rate": live.sample_rate, "sample_rate": rate,
                  "stream": True, "hop_s": live.hop / live.sample_rate, "complete": False,
                  "sources": [{"output": k + 1, "file": p.name} for k, p in enumerate(paths)]}
        write_text_atomic(report, json.dumps(record, indent=2) + "\n")
        frames = _stream(live, reader if reader is not None else source, rate, paths, realtime)
        record.update(complete=True, num_frames=frames)  # a stream cut short stays incomplete
        write_text_atomic(report, json.dumps(record, indent=2) + "\n")
    return paths


def _stream(live: StreamingSeparator, source: FileReader | BinaryIO, rate: int,
            paths: list[Path], realtime: bool) -> int:
    """Streams ``source`` (a sound file's reader, which refuses NaN, absurdly loud and
    truncated audio, or raw s16le PCM) into the stem files ``paths``
    (each created anew: a symlink or hard link in their place is replaced, never written
    through); returns the input's frame count."""
    for path in paths:  # claimed: ours or absent
        path.unlink(missing_ok=True)
    to_model = StreamingResampler(rate, live.sample_rate)
    to_input = StreamingResampler(live.sample_rate, rate, batch=live.num_sources)
    block = max(1, round(live.hop * rate / live.sample_rate))
    writers = [sf.SoundFile(str(p), "w", samplerate=rate, channels=1, subtype="FLOAT")
               for p in paths]
    unflushed = [0]
    try:
        def write(est: torch.Tensor, last: bool = False) -> None:  # est [m, S]
            if not bool(torch.isfinite(est).all()):  # the input was checked: the model's fault
                raise RuntimeError(f"the separator returned NaN or Inf near input sample {read} "
                                   "(the input was finite); check the checkpoint")
            wav = to_input.process(est.T)
            if last:
                wav = torch.cat([wav, to_input.finish()], dim=1)
            for k, writer in enumerate(writers):
                writer.write(wav[k].numpy())
            unflushed[0] += wav.shape[1]
            if unflushed[0] >= rate // FLUSHES_PER_SECOND:  # headers updated: readable so far
                for writer in writers:
                    writer.flush()
                unflushed[0] = 0

        start, read = time.monotonic(), 0
        while True:
            if realtime:
                time.sleep(max(0.0, start + read / rate - time.monotonic()))
            if isinstance(source, FileReader):
                chunk = source.read(read, min(read + block, source.length)).mean(0)  # [n]
            else:
                raw = source.read(2 * block)
                raw = raw[:len(raw) // 2 * 2]  # a torn last sample is dropped
                if not raw:
                    break
                chunk = torch.frombuffer(bytearray(raw), dtype=torch.int16).float() / 32768
            if chunk.numel() == 0:
                break
            read += chunk.numel()
            write(live.process(to_model.process(chunk[None]))[0])
        tail = to_model.finish()
        write(torch.cat([live.process(tail)[0], live.finish()[0]]), last=True)
    finally:
        for writer in writers:
            writer.close()
    return read


def _claim_outputs(paths: list[Path], report: Path, overwrite: bool, origin: str,
                   protected: frozenset[Path]) -> None:
    """Raises unless :func:`stream_to_stems` may write ``paths`` and ``report`` (#27's rule:
    only files a gass-separate report records are replaced, and only with ``overwrite``; never
    an input): :class:`Skipped` when a complete earlier run separated this same input file (a
    stream of stdin is never "the same"), ``FileExistsError`` or ``ValueError`` otherwise. An
    incomplete earlier stream of this input (cut short) is redone. With ``overwrite``, removes
    the stems the old report records that this run will not write (stem names only)."""
    previous = read_report(report)
    if report.exists() and previous is None:
        raise FileExistsError(f"{report} exists and is not a gass-separate report; move it or "
                              "choose another output folder (--out)")
    inputs = [str(p) for p in [*paths, report] if p.resolve() in protected]
    if inputs:
        raise ValueError(f"its outputs would be written over the input(s) {inputs}; choose an "
                         "output folder outside the input folder (or rename the inputs)")
    same = previous is not None and origin != "-" and previous.get("input") == origin
    if same and not overwrite and previous.get("complete", True):
        raise Skipped(f"outputs exist ({report}); --overwrite separates it again")
    recorded = reported_stems(report)
    foreign = [str(p) for p in paths if (p.exists() or p.is_symlink())
               and p.resolve() not in recorded]
    if foreign:
        raise FileExistsError(f"{foreign} exist and no gass-separate report records them as "
                              "its outputs (--overwrite replaces only those); move them or "
                              "choose another output folder (--out)")
    if previous is not None and not overwrite and not same:
        raise FileExistsError(f"outputs already exist ({report}) for "
                              f"{'stdin' if origin == '-' else 'another input'}, "
                              f"{previous.get('input')}; choose another output folder (--out), "
                              "or pass --overwrite (overwrite=True) to replace them")
    ours = re.compile(rf"^{re.escape(report.stem)}_(s\d+|residual)\.wav$")
    for stale in [report.parent / p.name for p in recorded if ours.match(p.name)]:
        if stale not in paths:  # an earlier run's stem this run does not write
            stale.unlink(missing_ok=True)


__all__ = ["StreamingResampler", "StreamingSeparator", "stream_to_stems"]
