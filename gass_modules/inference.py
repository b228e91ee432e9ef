"""Separation for users: ``GASSSeparator``, a SpeechBrain ``Pretrained`` interface.

``GASSSeparator.from_hparams(source=folder)`` loads a model folder
(:mod:`gass_modules.model_folder`) from the local disk, never from the network, and without
running code from it (:mod:`gass_modules.safe_hparams`; ``trust_code=True`` opts into full
hyperpyyaml). Files of any length, rate and channel count are separated chunk by chunk
(:mod:`gass_modules.chunking`: geometry, resampling margins and source matching) with bounded
memory; files are read and stems written by :mod:`gass_modules.audio`, which also defines
source activity.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchaudio
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig
from tqdm.auto import tqdm

from gass_modules.audio import (
    _MAX_RATE_PRODUCT,
    DEFAULT_THRESHOLD_DB,
    _ActivityMeter,
    _ArrayReader,
    _cached_resampler,
    _FileReader,
    _make_folder,
    _nonfinite_message,
    _open_audio,
    _OutputLock,
    _scan_finite,
    _StemWriter,
    _truncation_warning,
)
from gass_modules.chunking import _ChunkPlan, match_channels, match_chunk
from gass_modules.lobes.base import check_mixture
from gass_modules.losses import permute
from gass_modules.model_folder import (
    CHECKPOINT_FILE,
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP,
    HPARAMS_FILE,
    _check_chunking,
    _check_separator,
    load_separator_checkpoint,
    unwrap_module,
)
from gass_modules.pretrained import BUNDLED_MODELS, resolve_model_source
from gass_modules.safe_hparams import load_model_description

logger = logging.getLogger(__name__)


@dataclass
class Separation:
    """What ``GASSSeparator.separate_file`` returns: the kept stems and the activity report.

    Arguments
    ---------
    sample_rate : int
        The input file's rate; stems are at this rate.
    num_frames : int
        Input length in samples.
    channels : int
        Channels of each stem (1 when the input was downmixed).
    energy_db : list of float
        Per model output, energy relative to the mixture in dB (``-inf`` when silent).
    active : list of bool
        Per model output, ``energy_db >= threshold_db`` (all False for a silent mixture).
    active_seconds : list of float
        Per model output, seconds of 0.1 s frames whose power is over ``threshold_db`` relative
        to the mixture's mean power.
    kept : list of int
        Model output indices of the stems, in stem order (loudest first).
    sources : torch.Tensor, optional
        ``[C, T, K]`` kept stems, when no ``out_dir`` was given.
    files : list of pathlib.Path
        The written stems ``<name>_s1.wav ...`` (``kept[k]`` is in ``files[k]``).
    clipped : list of int
        Per model output, samples clipped to [-1, 1] when written in an integer encoding
        (PCM, u-law, A-law).
    warnings : list of str
        What the user should know about the input (e.g. a truncated file: how many frames were
        read); also logged.

    Example
    -------
    >>> r = Separation(8000, 16000, 1, [-3.0, -40.0], [True, False], [2.0, 0.0], [0])
    >>> r.num_active, r.duration
    (1, 2.0)
    """

    sample_rate: int
    num_frames: int
    channels: int
    energy_db: list[float]
    active: list[bool]
    active_seconds: list[float]
    kept: list[int]
    sources: torch.Tensor | None = None
    files: list[Path] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_active(self) -> int:
        """Number of outputs over the activity threshold."""
        return int(sum(self.active))

    @property
    def duration(self) -> float:
        """Input duration in seconds."""
        return self.num_frames / self.sample_rate


class GASSSeparator(Pretrained):
    """Separates mixtures and audio files of any length, rate and channel count (GASS).

    Load a model folder with ``GASSSeparator.from_hparams(source=DIR)`` (written by
    ``gass_modules.model_folder.save_model_folder``; local folders only, no network).
    ``separate_batch`` separates tensors, ``separate_file`` files (streamed: memory independent of
    the length). Long inputs are separated in overlapping chunks whose source order is aligned
    before overlap-add (``gass_modules.chunking``).

    Arguments
    ---------
    modules : dict
        ``{"separator": module}``, a separator of the contract in docs/architecture.md.
    hparams : dict
        At least ``sample_rate`` and ``num_sources`` (matching the separator); optionally
        ``chunk_seconds`` and ``chunk_overlap`` (defaults for long inputs) and ``fixed_order``
        (labelled stems: no chunk re-alignment, stems keep their index; default false).
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cuda:0", "precision": "bf16"}``.
    freeze_params : bool
        Freeze parameters and call ``eval()`` (inference).

    Example
    -------
    >>> model = ScaledCopies([0.2, 0.8], sample_rate=8000)  # tests/doubles.py: g_s * mix
    >>> sep = GASSSeparator(modules={"separator": model},
    ...                     hparams={"sample_rate": 8000, "num_sources": 2},
    ...                     run_opts={"device": "cpu"})
    >>> mix = torch.randn(2, 30000)
    >>> est = sep.separate_batch(mix, chunk_seconds=1.0)  # 4 overlapping chunks
    >>> est.shape
    torch.Size([2, 30000, 2])
    >>> torch.allclose(est, model(mix), atol=1e-6)
    True
    """

    MODULES_NEEDED = ["separator"]
    HPARAMS_NEEDED = ["sample_rate", "num_sources"]

    def __init__(self, modules: Mapping | None = None, hparams: Mapping | None = None,
                 run_opts: Mapping | None = None, freeze_params: bool = True) -> None:
        if not modules or "separator" not in modules:
            raise ValueError(f"GASSSeparator needs modules={{'separator': ...}}, got "
                             f"{sorted(modules or {})}")
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts,
                         freeze_params=freeze_params)
        model = unwrap_module(self.mods.separator)
        _check_separator(model, "GASSSeparator")
        for name in ("sample_rate", "num_sources"):
            if getattr(self.hparams, name) != getattr(model, name):
                raise ValueError(f"hparams {name}={getattr(self.hparams, name)!r} but the "
                                 f"separator has {name}={getattr(model, name)!r}; fix "
                                 f"{HPARAMS_FILE}")

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, hparams_file: str = HPARAMS_FILE,
                     savedir: str | os.PathLike | None = None, trust_code: bool = False,
                     **kwargs) -> GASSSeparator:
        """Loads a model folder from the local disk, without running code from it by default.

        By default ``hyperparams.yaml`` is read by
        :func:`gass_modules.safe_hparams.load_model_description`: plain data and ``!new:`` of
        registered separator classes only (``!apply``, ``!name``, other classes, ... are
        refused with an error naming ``trust_code``), and the checkpoint is loaded with
        ``torch.load(weights_only=True)``. ``trust_code=True`` loads the folder as SpeechBrain's
        ``from_hparams`` does, with full hyperpyyaml, which runs any code the file names: only
        for folders whose source you trust.

        Arguments
        ---------
        source : str or os.PathLike
            The model folder (``hyperparams.yaml`` + ``separator.ckpt``), or the name of a model
            bundled with gass (``"gass-mini"``, see :mod:`gass_modules.pretrained`).
        hparams_file : str
            Name of the hyperparameter file inside ``source``.
        savedir : str or os.PathLike, optional
            With ``trust_code=True``: where SpeechBrain links the collected files (default: load
            in place). The safe loader always loads in place.
        trust_code : bool
            Load with full hyperpyyaml (runs code from the folder; see above).
        **kwargs
            ``overrides`` (values replacing the file's), ``run_opts`` and ``freeze_params``;
            with ``trust_code=True`` anything ``pretrained_from_hparams`` takes. The network is
            never used.

        Returns
        -------
        GASSSeparator
            The loaded interface (eval mode, frozen).

        Example
        -------
        >>> GASSSeparator.from_hparams(source="no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: model folder not found: no/such/folder; ...
        """
        folder = resolve_model_source(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder not found: {source}; expected a local folder "
                                    f"with {HPARAMS_FILE} and {CHECKPOINT_FILE} (written by "
                                    "gass_modules.model_folder.save_model_folder) or a bundled "
                                    f"model's name ({', '.join(sorted(BUNDLED_MODELS))})")
        if not (folder / hparams_file).is_file():
            raise FileNotFoundError(f"{folder / hparams_file} not found; a model folder holds "
                                    f"{HPARAMS_FILE} and {CHECKPOINT_FILE}")
        if not trust_code:
            return cls._from_description(folder, hparams_file, **kwargs)
        kwargs.setdefault("fetch_config", FetchConfig(allow_network=False))
        try:
            return super().from_hparams(source=str(folder.resolve()), hparams_file=hparams_file,
                                        savedir=savedir, **kwargs)
        except (FileNotFoundError, ValueError):
            raise
        except Exception as err:
            raise RuntimeError(f"cannot build the model from {folder / hparams_file}: "
                               f"{type(err).__name__}: {err}") from err

    @classmethod
    def _from_description(cls, folder: Path, hparams_file: str, overrides: Mapping | str | None
                          = None, run_opts: Mapping | None = None, freeze_params: bool = True,
                          **unexpected: object) -> GASSSeparator:
        """The safe path of :meth:`from_hparams` (no code from the folder runs)."""
        if unexpected:
            raise TypeError(f"from_hparams got {sorted(unexpected)}, which only the trusted "
                            "loader takes (trust_code=True); the safe loader takes overrides, "
                            "run_opts and freeze_params")
        path = folder / hparams_file
        hparams = load_model_description(path.read_text(encoding="utf-8"), overrides, str(path))
        separator = hparams.get("separator")
        _check_separator(separator, str(path))
        load_separator_checkpoint(separator, folder / CHECKPOINT_FILE)
        return cls(modules={"separator": separator}, hparams=hparams, run_opts=run_opts,
                   freeze_params=freeze_params)

    @property
    def device(self) -> str:
        """Where the separator's parameters are (follows ``.to(device)``), as a string.

        SpeechBrain's ``Pretrained`` keeps the ``run_opts`` device in an attribute that goes stale
        when the interface is moved; here it is read off the parameters (the ``run_opts`` value
        only until the modules exist, or for a separator without parameters).

        Example
        -------
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.5], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 2},
        ...                     run_opts={"device": "cpu"})
        >>> sep.device, sep.to("meta").device
        ('cpu', 'meta')
        """
        mods = self.__dict__.get("_modules", {}).get("mods")
        for tensor in (mods.parameters() if mods is not None else ()):
            return str(tensor.device)
        for tensor in (mods.buffers() if mods is not None else ()):
            return str(tensor.device)
        return self.__dict__.get("_run_opts_device")

    @device.setter
    def device(self, value: str | torch.device | None) -> None:
        """Keeps the ``run_opts`` device (SpeechBrain's ``Pretrained`` sets it at start).

        Example
        -------
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 1},
        ...                     run_opts={"device": "cpu"})
        >>> sep.device = "cuda:0"  # recorded, but the parameters decide
        >>> sep.device
        'cpu'
        """
        self.__dict__["_run_opts_device"] = None if value is None else str(value)

    @property
    def sample_rate(self) -> int:
        """The model's sample rate in Hz."""
        return int(self.hparams.sample_rate)

    @property
    def num_sources(self) -> int:
        """Number of outputs ``S``."""
        return int(self.hparams.num_sources)

    @property
    def fixed_order(self) -> bool:
        """Whether output ``k`` is always stem ``k`` (the model folder's ``fixed_order``)."""
        return bool(getattr(self.hparams, "fixed_order", False))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`separate_batch` at the model's rate.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources.
        """
        return self.separate_batch(mix)

    def separate_batch(self, mix: torch.Tensor, sample_rate: int | None = None,
                       chunk_seconds: float | None = None, overlap: float | None = None,
                       progress: bool = False, align: bool | None = None) -> torch.Tensor:
        """Separates a batch of mixtures of any length and rate.

        Items are independent (each has its own chunk alignment). All ``S`` outputs are returned,
        in the order of the first chunk (in the model's order without alignment); use
        ``gass_modules.audio.source_activity`` to find the silent ones.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, T]`` mixtures, any ``T >= 1``.
        sample_rate : int, optional
            Rate of ``mix`` in Hz (default: the model's); other rates are resampled in and out.
        chunk_seconds : float, optional
            Chunk length (default: the model folder's ``chunk_seconds``, else 10 s).
        overlap : float, optional
            Fraction of a chunk shared with the next, in (0, 0.5] (default 0.25).
        progress : bool
            Show a tqdm bar over chunks.
        align : bool, optional
            Permute each chunk's outputs to match the previous chunk's before overlap-add
            (default: true, false for ``fixed_order`` model folders, whose output ``k`` is stem
            ``k`` in every chunk).

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources at ``sample_rate``, on ``mix``'s device.
        """
        check_mixture(mix)
        if not torch.isfinite(mix).all():
            b, t = (~torch.isfinite(mix)).nonzero()[0].tolist()
            raise ValueError(_nonfinite_message(f"mix[{b}]", t, 0, sample_rate or
                                                self.sample_rate).replace(", channel 0", ""))
        rate = self._check_rate(sample_rate)
        reader = _ArrayReader(mix.detach().float().to(self.device))  # no round trip via CPU
        blocks = [est for _, est in self._stream(reader, mix.shape[-1], rate, False, False,
                                                 chunk_seconds, overlap, progress, "batch",
                                                 align, keep_device=True)]
        return torch.cat(blocks, dim=1).to(mix.device)  # [B, T, S]

    def separate_file(
        self,
        path: str | os.PathLike,
        out_dir: str | os.PathLike | None = None,
        channels: str = "mix",
        keep_silent: bool = False,
        chunk_seconds: float | None = None,
        overlap: float | None = None,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        overwrite: bool = False,
        on_block: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
        progress: bool = False,
        align: bool | None = None,
        protected: Iterable[str | os.PathLike] = (),
    ) -> Separation:
        """Separates an audio file (wav, flac, ogg, ...) of any length, rate and channel count.

        The file is streamed through soundfile in chunks; with ``out_dir`` the stems are written
        as they are computed (``<name>_s1.wav``, ... at the file's rate, in its sample format
        when WAV has it, FLOAT for lossy codecs), so memory does not grow with the length.
        Silent outputs (``energy_db < threshold_db``) are dropped unless ``keep_silent``; stems
        are ordered loudest first, except for ``fixed_order`` model folders, where output ``k``
        is always written as ``<name>_s{k+1}.wav`` (labelled stems keep their index).

        Arguments
        ---------
        path : str or os.PathLike
            The input file.
        out_dir : str or os.PathLike, optional
            Write the stems there; otherwise they are returned in ``Separation.sources``.
        channels : str
            ``"mix"``: downmix to mono and separate once; ``"each"``: separate every channel
            (stems keep the channel count; channel ``c``'s sources are matched to channel 0's).
        keep_silent : bool
            Keep all ``S`` outputs, silent ones included.
        chunk_seconds : float, optional
            Chunk length (default: the model folder's, else 10 s).
        overlap : float, optional
            Fraction of a chunk shared with the next, in (0, 0.5].
        threshold_db : float
            Activity threshold relative to the mixture energy (dB).
        overwrite : bool
            Replace existing ``<name>_s*.wav`` in ``out_dir``; otherwise ``FileExistsError``.
        on_block : callable, optional
            Called with every finished block ``(mix [C, n], sources [C, n, S])`` in model
            output order (e.g. to draw spectrograms without keeping the audio).
        progress : bool
            Show a tqdm bar over chunks.
        align : bool, optional
            Permute each chunk's outputs (and each channel's, with ``channels="each"``) to match
            before overlap-add (default: true, false for ``fixed_order`` model folders).
        protected : iterable of paths
            Files never written over, e.g. the other inputs of a batch (``gass-separate`` passes
            all its inputs); a stem named like one is an error. ``path`` itself always is.

        Returns
        -------
        Separation
            Stems (or their files) and the activity report.

        Notes
        -----
        Stems are written to uniquely named hidden files and renamed when complete, under a
        lock on ``<out_dir>/<name>*`` (a second process writing the same names fails with a
        ``FileExistsError`` instead of mixing its stems with these).

        Example
        -------
        >>> import soundfile
        >>> tmp = getfixture("tmp_path")
        >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(44100, 2).numpy(), 44100)
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 2},
        ...                     run_opts={"device": "cpu"})
        >>> result = sep.separate_file(tmp / "mix.wav", out_dir=tmp / "out", channels="each")
        >>> result.num_active, [p.name for p in result.files]
        (1, ['mix_s1.wav'])
        >>> soundfile.info(result.files[0]).samplerate, soundfile.info(result.files[0]).channels
        (44100, 2)
        """
        if channels not in ("mix", "each"):
            raise ValueError(f"channels must be 'mix' (downmix) or 'each' (per channel), got "
                             f"{channels!r}")
        if not isinstance(threshold_db, (int, float)) or math.isnan(threshold_db):
            raise ValueError(f"threshold_db must be a number of dB, got {threshold_db!r}")
        path = Path(path)
        protected = frozenset(Path(p).resolve() for p in (path, *protected))
        with _open_audio(path) as handle, contextlib.ExitStack() as stack:
            length, rate, subtype = handle.frames, handle.samplerate, handle.subtype
            if length <= 0:
                raise ValueError(f"expected audio, got 0 samples in {path}")
            rate = self._check_rate(rate)
            notes = [w for w in [_truncation_warning(handle, str(path))] if w]
            for note in notes:
                logger.warning(note)
            if subtype in ("FLOAT", "DOUBLE"):
                _scan_finite(handle, str(path))
            out_channels = 1 if channels == "mix" else handle.channels
            writer = None
            if out_dir is not None:
                _make_folder(Path(out_dir))
                stack.enter_context(_OutputLock(Path(out_dir), path.stem))
                writer = _StemWriter(Path(out_dir), path.stem, self.num_sources, rate,
                                     out_channels, subtype, length, overwrite, protected)
            meter = _ActivityMeter(self.num_sources, rate)
            blocks = []
            try:
                stream = self._stream(_FileReader(handle, str(path)), length, rate,
                                      channels == "mix", True, chunk_seconds, overlap, progress,
                                      path.name, align)
                for mix_block, est in stream:
                    meter.update(mix_block, est)
                    if on_block is not None:
                        on_block(mix_block, est)
                    if writer is not None:
                        writer.write(est)
                    else:
                        blocks.append(est)
                energy_db, active, seconds = meter.result(threshold_db)
                if self.fixed_order:  # labelled stems keep their index
                    order = list(range(self.num_sources))
                else:
                    order = sorted(range(self.num_sources), key=lambda s: (not active[s],
                                                                           -energy_db[s]))
                if not keep_silent:
                    order = [s for s in order if active[s]]
                files = (writer.finish(order, by_index=self.fixed_order) if writer is not None
                         else [])
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
        sources = None if writer is not None else torch.cat(blocks, dim=1)[..., order]
        return Separation(sample_rate=rate, num_frames=length, channels=out_channels,
                          energy_db=energy_db, active=active, active_seconds=seconds, kept=order,
                          sources=sources, files=files,
                          clipped=writer.clipped if writer else [0] * self.num_sources,
                          warnings=notes)

    def chunking(self, chunk_seconds: float | None = None,
                 overlap: float | None = None) -> tuple[float, float]:
        """The chunk length and overlap used for the given arguments (None: the defaults).

        Defaults come from the model folder (``chunk_seconds``, ``chunk_overlap``), else 10 s
        and 0.25. The values are validated.

        Arguments
        ---------
        chunk_seconds : float, optional
            Requested chunk length in seconds.
        overlap : float, optional
            Requested fraction of a chunk shared with the next one, in (0, 0.5].

        Returns
        -------
        (float, float)
            ``(chunk_seconds, overlap)``; chunks are then rounded up to whole common ticks of
            the input and model rates.

        Example
        -------
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 1, "chunk_seconds": 4},
        ...                     run_opts={"device": "cpu"})
        >>> sep.chunking(), sep.chunking(2.5, 0.5)
        ((4.0, 0.25), (2.5, 0.5))
        """
        if chunk_seconds is None:
            chunk_seconds = float(getattr(self.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS))
        if overlap is None:
            overlap = float(getattr(self.hparams, "chunk_overlap", DEFAULT_OVERLAP))
        _check_chunking(chunk_seconds, overlap)
        return float(chunk_seconds), float(overlap)

    def _check_rate(self, sample_rate: int | None) -> int:
        """Validates an input rate; rates whose resampling kernel would be huge are refused."""
        rate = self.sample_rate if sample_rate is None else sample_rate
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {rate!r}")
        g = math.gcd(rate, self.sample_rate)
        if (rate // g) * (self.sample_rate // g) > _MAX_RATE_PRODUCT:
            raise ValueError(f"cannot resample {rate} Hz to the model's {self.sample_rate} Hz "
                             f"exactly (gcd {g} Hz: the sinc kernel would have billions of taps); "
                             "convert the file to a standard rate (e.g. 44100 or 48000 Hz) first")
        return rate

    def _resampler(self, orig: int, new: int) -> torchaudio.transforms.Resample:
        """A torchaudio resampler on the interface's device (kernels cached per process)."""
        return _cached_resampler(orig, new, str(self.device))

    def _plan(self, length: int, rate: int, chunk_seconds: float | None,
              overlap: float | None) -> _ChunkPlan:
        """Chunk geometry for ``length`` samples at ``rate`` (``gass_modules.chunking``)."""
        chunk_seconds, overlap = self.chunking(chunk_seconds, overlap)
        g = math.gcd(rate, self.sample_rate)
        unit, unit_model = rate // g, self.sample_rate // g  # one "common" tick, both rates

        def up(n: float) -> int:
            return max(unit, math.ceil(n / unit) * unit)

        chunk = up(min(chunk_seconds * rate, length))  # never longer than the input
        chunk = max(chunk, 2 * unit)
        ov = min(up(overlap * chunk), (chunk // 2) // unit * unit)
        margin = 0
        if rate != self.sample_rate:
            forward = self._resampler(rate, self.sample_rate)
            back = self._resampler(self.sample_rate, rate)
            # output at p depends on input within width + unit of p, in the kernel's own rate
            need = forward.width + unit + math.ceil((back.width + unit_model) * unit / unit_model)
            margin = up(need + 1)
        if length <= chunk:
            return _ChunkPlan(chunk, ov, margin, 1, up(length))
        hop = chunk - ov
        count = math.ceil((length - ov) / hop)
        return _ChunkPlan(chunk, ov, margin, count, up(length - (count - 1) * hop))

    def _separate_chunk(self, x: torch.Tensor, rate: int, keep_device: bool = False
                        ) -> torch.Tensor:
        """Resample ``[C, n]`` in, separate, resample out: ``[C, n, S]`` on the CPU (on the
        model's device with ``keep_device``)."""
        x = x.to(self.device)
        with torch.no_grad():
            if rate != self.sample_rate:
                x = self._resampler(rate, self.sample_rate)(x)  # [C, n_m]
            with self.inference_ctx:
                est = self.mods.separator(x)  # [C, n_m, S]
            est = est.float()
            if not torch.isfinite(est).all():
                raise RuntimeError("the separator returned NaN or Inf (input was finite); try "
                                   "precision fp32 or check the checkpoint")
            if rate != self.sample_rate:
                est = self._resampler(self.sample_rate, rate)(est.transpose(1, 2).contiguous())
                est = est.transpose(1, 2)  # [C, n, S]
        return est if keep_device else est.cpu()

    def _stream(self, reader: _ArrayReader | _FileReader, length: int, rate: int,
                downmix: bool, joint: bool, chunk_seconds: float | None, overlap: float | None,
                progress: bool, name: str, align: bool | None = None,
                keep_device: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields finished ``(mix [C, n], sources [C, n, S])`` blocks in time order (chunks and
        channels permuted to match unless ``align`` is false; None: unless ``fixed_order``);
        sources on the CPU, or on the model's device with ``keep_device``."""
        align = not self.fixed_order if align is None else bool(align)
        plan = self._plan(length, rate, chunk_seconds, overlap)
        ov, margin = plan.overlap, plan.margin
        ramp = torch.hann_window(2 * ov, periodic=True, dtype=torch.float64).float()
        w_up, w_down = ramp[:ov, None], ramp[ov:, None]  # [O, 1]: w_up + w_down = 1
        tail = reference = None
        for k in tqdm(range(plan.count), desc=name, unit="chunk", leave=False,
                      disable=not progress or plan.count == 1):
            start = k * plan.hop
            core = plan.chunk if k < plan.count - 1 else plan.last
            seg = reader.read(start - margin, start + core + margin)  # [C, n]
            x = seg.mean(0, keepdim=True) if downmix else seg  # [C', n]
            mix = x[:, margin: margin + core]  # [C', core]
            try:
                est = self._separate_chunk(x, rate, keep_device)[:, margin: margin + core]
                w_up, w_down = w_up.to(est.device), w_down.to(est.device)  # [C', core, S]
            except RuntimeError as err:
                raise RuntimeError(f"{name}, chunk {k + 1}/{plan.count} at "
                                   f"{start / rate:.2f} s: {err}") from err
            if align and joint and est.shape[0] > 1:  # channels of one recording: match ch. 0
                est = permute(est, match_channels(est))
            if k > 0:  # keep each source on its output: match the previous chunk's tail
                if align:
                    est = permute(est, match_chunk(reference, est[:, :ov], mix[:, :ov], joint))
                est[:, :ov] = est[:, :ov] * w_up + tail
            if k < plan.count - 1:
                reference = est[:, core - ov:].clone()
                tail = reference * w_down
                emit = core - ov
            else:
                emit = length - start
            yield mix[:, :emit], est[:, :emit]
