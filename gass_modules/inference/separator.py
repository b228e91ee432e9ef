"""Separation for users: ``GASSSeparator``, a SpeechBrain ``Pretrained`` interface.

``GASSSeparator.from_hparams(source=folder)`` loads a model folder
(:mod:`gass_modules.model_folder.folder`) from the local disk, never from the network, and without
running code from it (:mod:`gass_modules.model_folder.safe_hparams`; ``trust_code=True`` opts into
full
hyperpyyaml). Tensors and files of any length, rate and channel count are separated chunk by
chunk with bounded memory (:func:`gass_modules.inference.chunking.stream_separation`: geometry,
resampling
margins and source order); files are read and stems written by :mod:`gass_modules.audio`, which
also defines source activity.

Two ways to separate a file:

* ``separate_file(path)`` as SpeechBrain's ``SepformerSeparation.separate_file``: ``[1, T, S]``
  at the model's rate, every output in model order (the file is downmixed and resampled);
* ``separate_to_files(path, out_dir)``: stems at the file's rate and channel count, streamed to
  disk, silent ones dropped and the others sorted loudest first, with an activity report
  (:class:`~gass_modules.inference.stems.Separation`), as ``gass-separate`` writes them
  (:func:`gass_modules.inference.stems.separate_to_stems` with this interface's model and chunking).

Besides gass separators (``modules={"separator": ...}``), ``GASSSeparator`` runs SpeechBrain's
encoder / masknet / decoder models (``modules={"encoder": ..., "masknet": ..., "decoder": ...}``,
e.g. a SepFormer) through :class:`gass_modules.lobes.parts.masking.EncoderMaskerDecoder`.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import LocalStrategy

from gass_modules.audio import (
    DEFAULT_THRESHOLD_DB,
    MAX_SAMPLE_MAGNITUDE,
    FileReader,
    cached_resampler,
    nonfinite_message,
    open_audio,
    truncation_warning,
)
from gass_modules.inference.chunking import Reader, check_rate, stream_separation
from gass_modules.inference.stems import Separation, separate_to_stems
from gass_modules.lobes.base import check_mixture, check_separator
from gass_modules.lobes.parts.masking import EncoderMaskerDecoder
from gass_modules.model_folder.folder import (
    CHECKPOINT_FILE,
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP,
    HPARAMS_FILE,
    MIN_CHUNK_SECONDS,
    check_chunking,
    folder_order,
    load_separator_checkpoint,
    unwrap_module,
)
from gass_modules.model_folder.pretrained import fetch_model_file, model_source
from gass_modules.model_folder.safe_hparams import load_model_description
from gass_modules.optional import FetchConfig, fetch_options, speechbrain_1_0_precision
from gass_modules.order import resolve_order

logger = logging.getLogger(__name__)
MASKING_MODULES = ("encoder", "masknet", "decoder")  # SpeechBrain's separation layout
MAX_MODEL_RATE = 768_000  # Hz: the highest rate audio interfaces record at
MAX_CARD_BYTES = 1 << 20  # hyperparams.yaml: a card is ~1 KB; parsing 100s of MB takes minutes
_TO_FILES_OPTIONS = ("out_dir", "channels", "keep_silent", "threshold_db", "overwrite",
                     "on_block", "protected")  # separate_file's before it followed SB


class GASSSeparator(Pretrained):
    """Separates mixtures and audio files of any length, rate and channel count (GASS).

    Load a model folder (``gass_modules.model_folder.folder.save_model_folder``) with
    ``from_hparams``.
    ``separate_batch`` separates tensors, ``separate_file`` a file as SpeechBrain's
    ``SepformerSeparation`` does, ``separate_to_files`` a file into stem files (streamed: memory
    independent of the length). Long inputs are separated in overlapping chunks
    (``gass_modules.inference.chunking``) whose source order is aligned before overlap-add, unless
    the
    model's outputs are labelled stems (``order: fixed``).

    Arguments
    ---------
    modules : dict
        ``{"separator": module}``, a separator of the contract in docs/architecture.md; or
        SpeechBrain's ``{"encoder": ..., "masknet": ..., "decoder": ...}`` (e.g. a SepFormer),
        composed by ``gass_modules.lobes.parts.masking.EncoderMaskerDecoder`` into ``separator``.
    hparams : dict
        ``sample_rate`` and ``num_sources`` (matching the separator; SpeechBrain's ``num_spks``
        stands for ``num_sources``); optionally ``chunk_seconds`` and ``chunk_overlap`` (defaults
        for long inputs) and ``order``: ``"aligned"`` (default, PIT-trained outputs: chunks are
        permuted to match) or ``"fixed"`` (labelled stems: output ``k`` is stem ``k``); a folder
        written before gass 2.0.0 may say ``fixed_order: true|false`` instead
        (:func:`gass_modules.model_folder.folder.folder_order`).
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
    >>> est.shape, sep.order
    (torch.Size([2, 30000, 2]), 'aligned')
    >>> torch.allclose(est, model(mix), atol=1e-6)
    True
    """

    MODULES_NEEDED = ["separator"]
    HPARAMS_NEEDED = ["sample_rate", "num_sources"]

    def __init__(self, modules: Mapping | None = None, hparams: Mapping | None = None,
                 run_opts: Mapping | None = None, freeze_params: bool = True) -> None:
        modules, hparams = dict(modules or {}), dict(hparams or {})
        if "num_sources" not in hparams and "num_spks" in hparams:  # SpeechBrain's name
            hparams["num_sources"] = hparams["num_spks"]
        if "separator" not in modules and all(k in modules for k in MASKING_MODULES):
            for name in ("sample_rate", "num_sources"):
                if name not in hparams:
                    raise ValueError(f"GASSSeparator with SpeechBrain's encoder/masknet/decoder "
                                     f"needs hparams['{name}'] (num_spks for num_sources)")
            modules["separator"] = EncoderMaskerDecoder(
                *(modules[k] for k in MASKING_MODULES), num_sources=int(hparams["num_sources"]),
                sample_rate=int(hparams["sample_rate"]))
        if "separator" not in modules:
            raise ValueError(f"GASSSeparator needs modules={{'separator': ...}} (or SpeechBrain's "
                             f"{{'encoder', 'masknet', 'decoder'}}), got {sorted(modules)}")
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts,
                         freeze_params=freeze_params)
        if not hasattr(self, "inference_ctx"):  # SpeechBrain 1.0.x: no precision option
            self.inference_ctx = speechbrain_1_0_precision(run_opts)
        model = unwrap_module(self.mods.separator)
        check_separator(model, "GASSSeparator")
        for name in ("sample_rate", "num_sources"):
            if getattr(self.hparams, name) != getattr(model, name):
                raise ValueError(f"hparams {name}={getattr(self.hparams, name)!r} but the "
                                 f"separator has {name}={getattr(model, name)!r}; fix "
                                 f"{HPARAMS_FILE}")
        self._order = folder_order(hparams)
        if not 1 <= self.sample_rate <= MAX_MODEL_RATE:
            raise ValueError(f"sample_rate={self.sample_rate} Hz is not an audio rate a model "
                             f"runs at (1 to {MAX_MODEL_RATE} Hz); fix {HPARAMS_FILE}")
        self.chunking()  # the folder's chunking defaults are checked at load, not per file

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, hparams_file: str = HPARAMS_FILE,
                     savedir: str | os.PathLike | None = None, trust_code: bool = False,
                     local_strategy: LocalStrategy = LocalStrategy.SYMLINK,
                     fetch_config: FetchConfig | None = None, **kwargs) -> GASSSeparator:
        """Loads a model folder as SpeechBrain's ``from_hparams`` does, without running code
        from it by default.

        ``source`` is fetched by SpeechBrain (``speechbrain.utils.fetching.fetch``): a local
        folder is used in place (or linked into ``savedir``), a URL downloaded into ``savedir``,
        a hub id (``org/name``) taken from the Hugging Face cache or hub (``HF_HUB_OFFLINE=1``
        or ``FetchConfig(allow_network=False)``: the cache only); a bundled name is its package
        folder (:func:`gass_modules.model_folder.pretrained.model_source`); files in ``savedir`` are
        used.

        By default ``hyperparams.yaml`` is read by
        :func:`gass_modules.model_folder.safe_hparams.load_model_description` (plain data and
        ``!new:`` of
        registered separator classes; ``!apply``, ``!name``, other classes, ... are refused with
        an error naming ``trust_code``) and the checkpoint with
        ``torch.load(weights_only=True)``. ``trust_code=True`` loads with full hyperpyyaml, as
        SpeechBrain does, which runs any code the file names: only for sources you trust.

        Arguments
        ---------
        source : str or os.PathLike
            A model folder (``hyperparams.yaml`` + ``separator.ckpt``), a bundled model's name
            (``"gass-mini"``, ``"gass-base"`` when bundled:
            :mod:`gass_modules.model_folder.pretrained`), a URL
            (``http(s)://.../folder``, with ``savedir``) or a hub id (``org/name``).
        hparams_file : str
            Name of the hyperparameter file inside ``source``.
        savedir : str or os.PathLike, optional
            Where the fetched files are put (links to local files, downloads); default: local
            folders are read in place, URLs need it.
        trust_code : bool
            Load with full hyperpyyaml (runs code from the folder; see above).
        local_strategy : speechbrain.utils.fetching.LocalStrategy
            How local files reach ``savedir`` (SpeechBrain's default: symlinks).
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            SpeechBrain's fetching options (network, cache folder, revision, ...).
        **kwargs
            ``overrides`` (values replacing the file's), ``run_opts`` and ``freeze_params``;
            with ``trust_code=True`` anything ``pretrained_from_hparams`` takes.

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
        name = model_source(source)
        options = fetch_options(fetch_config)  # FetchConfig on SpeechBrain 1.1, none on 1.0
        if trust_code:
            try:
                return super().from_hparams(source=name, hparams_file=hparams_file,
                                            savedir=savedir, local_strategy=local_strategy,
                                            **options, **kwargs)
            except (FileNotFoundError, ValueError):
                raise
            except Exception as err:
                raise RuntimeError(f"cannot build the model from {source}/{hparams_file}: "
                                   f"{type(err).__name__}: {err}") from err
        paths = [fetch_model_file(filename, name, savedir, local_strategy, fetch_config)
                 for filename in (hparams_file, CHECKPOINT_FILE)]
        return cls._from_description(*paths, **kwargs)

    @classmethod
    def _from_description(cls, hparams_path: Path, checkpoint: Path,
                          overrides: Mapping | str | None = None,
                          run_opts: Mapping | None = None, freeze_params: bool = True,
                          **unexpected: object) -> GASSSeparator:
        """The safe path of :meth:`from_hparams` (no code from the folder runs)."""
        if unexpected:
            raise TypeError(f"from_hparams got {sorted(unexpected)}, which only the trusted "
                            "loader takes (trust_code=True); the safe loader takes overrides, "
                            "run_opts, freeze_params, savedir, local_strategy and fetch_config")
        if hparams_path.stat().st_size > MAX_CARD_BYTES:
            raise ValueError(f"{hparams_path} has {hparams_path.stat().st_size} bytes; a model "
                             f"card has a few KB (at most {MAX_CARD_BYTES} accepted)")
        try:
            text = hparams_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{hparams_path} is not UTF-8 text ({err}); a model card is the "
                             "yaml save_model_folder writes") from None
        hparams = load_model_description(text, overrides, str(hparams_path))
        separator = hparams.get("separator")
        check_separator(separator, str(hparams_path))
        load_separator_checkpoint(separator, checkpoint)
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
    def order(self) -> str:
        """``"aligned"`` (outputs permuted to match from chunk to chunk) or ``"fixed"`` (output
        ``k`` is stem ``k``), the model folder's ``order``.

        Example
        -------
        >>> GASSSeparator(modules={"separator": ScaledCopies([1.0], 8000)},
        ...               hparams={"sample_rate": 8000, "num_sources": 1, "order": "fixed"},
        ...               run_opts={"device": "cpu"}).order
        'fixed'
        """
        return self._order

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
                       progress: bool = False, order: str | None = None) -> torch.Tensor:
        """Separates a batch of mixtures of any length and rate.

        Items are independent (each has its own chunk alignment). All ``S`` outputs are returned,
        in the order of the first chunk (in the model's order with ``order="fixed"``); use
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
        order : str, optional
            ``"aligned"`` (each chunk's outputs permuted to match the previous chunk's) or
            ``"fixed"`` (output ``k`` is stem ``k``); default: the model folder's ``order``.

        Returns
        -------
        torch.Tensor
            ``[B, T, S]`` estimated sources at ``sample_rate``, on ``mix``'s device.
        """
        check_mixture(mix)
        if not torch.isfinite(mix).all():
            b, t = (~torch.isfinite(mix)).nonzero()[0].tolist()
            raise ValueError(nonfinite_message(f"mix[{b}]", t, 0, sample_rate or
                                                self.sample_rate).replace(", channel 0", ""))
        if float(mix.abs().max()) > MAX_SAMPLE_MAGNITUDE:  # the model's NaN would blame it
            raise ValueError(f"input too loud: a sample of mix is {float(mix.abs().max()):.3g}, "
                             f"over {MAX_SAMPLE_MAGNITUDE:.0e}; expected audio in [-1, 1]")
        rate = check_rate(self.sample_rate if sample_rate is None else sample_rate,
                          self.sample_rate)
        signal = mix.detach().float().to(self.device)  # chunks stay on the model's device
        blocks = [est for _, est in self._stream(
            signal, sample_rate=rate, chunk_seconds=chunk_seconds, overlap=overlap,
            order=resolve_order(order, default=self.order), progress=progress,
            name="batch")]
        return torch.cat(blocks, dim=1).to(mix.device)  # [B, T, S]

    def separate_file(self, path: str | os.PathLike, savedir: str | os.PathLike | None = None,
                      *, chunk_seconds: float | None = None, overlap: float | None = None,
                      order: str | None = None, progress: bool = False,
                      **removed: object) -> torch.Tensor:
        """Separates an audio file as SpeechBrain's ``SepformerSeparation.separate_file`` does.

        The file (wav, flac, ogg, ...; local, never downloaded) is read, its channels averaged,
        resampled to the model's rate (torchaudio, as SpeechBrain) and separated chunk by chunk
        (:meth:`separate_batch`: the model never sees more than one chunk, where SpeechBrain runs
        the whole file at once). Like SpeechBrain it returns every output in model order; unlike
        it the sources keep their level (SpeechBrain divides each by its peak:
        ``est / est.abs().amax(1, keepdim=True)`` gives its result). The whole file is held in
        memory; :meth:`separate_to_files` streams it instead and writes stems at the file's own
        rate and channel count.

        Arguments
        ---------
        path : str or os.PathLike
            The input file.
        savedir : str or os.PathLike, optional
            SpeechBrain's folder for downloaded inputs; gass reads local files only, so it is
            accepted for compatibility and not used.
        chunk_seconds : float, optional
            Chunk length (default: the model folder's, else 10 s).
        overlap : float, optional
            Fraction of a chunk shared with the next, in (0, 0.5].
        order : str, optional
            ``"aligned"`` or ``"fixed"`` (default: the model folder's ``order``).
        progress : bool
            Show a tqdm bar over chunks.
        **removed
            The options ``separate_file`` took before it followed SpeechBrain (``out_dir``,
            ``channels``, ``keep_silent``, ...): a ``TypeError`` pointing to
            :meth:`separate_to_files`.

        Returns
        -------
        torch.Tensor
            ``[1, T', S]`` sources at the model's rate (``T'`` the resampled length), on the
            model's device.

        Example
        -------
        >>> import soundfile
        >>> tmp = getfixture("tmp_path")
        >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(16000, 2).numpy(), 16000)
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 2},
        ...                     run_opts={"device": "cpu"})
        >>> sep.separate_file(tmp / "mix.wav").shape  # 2 s at the model's 8 kHz, 2 outputs
        torch.Size([1, 8000, 2])
        """
        if removed:
            options = sorted(removed)
            if set(options) <= set(_TO_FILES_OPTIONS):
                raise TypeError(f"separate_file(path, savedir) returns the sources [1, T, S] at "
                                f"the model's rate, like SpeechBrain's SepformerSeparation; the "
                                f"options {options} (stem files, activity, loudness order) "
                                "belong to separate_to_files(path, out_dir=..., ...)")
            raise TypeError(f"separate_file got unexpected keyword arguments {options}")
        path = Path(path)
        with open_audio(path) as handle:
            length, rate = handle.frames, handle.samplerate
            if length <= 0:
                raise ValueError(f"expected audio, got 0 samples in {path}")
            check_rate(rate, self.sample_rate)
            note = truncation_warning(handle, str(path))
            if note:
                logger.warning(note)
            reader, step = FileReader(handle, str(path)), 1 << 20  # a header's length is
            audio = torch.cat([reader.read(start, min(start + step, length))  # not allocated
                               for start in range(0, length, step)], 1)  # [C, N], finite
        mono = audio.mean(0, keepdim=True).to(self.device)  # [1, N]
        if rate != self.sample_rate:
            mono = cached_resampler(rate, self.sample_rate, str(mono.device))(mono)  # [1, N']
        return self.separate_batch(mono, chunk_seconds=chunk_seconds, overlap=overlap,
                                   order=order, progress=progress)

    def separate_to_files(
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
        order: str | None = None,
        protected: Iterable[str | os.PathLike] = (),
        residual: bool = False,
    ) -> Separation:
        """Separates an audio file (wav, flac, ogg, ...) of any length, rate and channel count
        into stems at the file's rate, with an activity report.

        The file is streamed through soundfile in chunks; with ``out_dir`` the stems are written
        as they are computed (``<name>_s1.wav``, ... at the file's rate, in its sample format
        when WAV has it, FLOAT for lossy codecs), so memory does not grow with the length.
        Silent outputs (``energy_db < threshold_db``) are dropped unless ``keep_silent``; stems
        are ordered loudest first, except for ``order: fixed`` model folders, where output ``k``
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
            output order, on the CPU (e.g. to draw spectrograms without keeping the audio).
        progress : bool
            Show a tqdm bar over chunks.
        order : str, optional
            ``"aligned"`` (each chunk's and channel's outputs permuted to match before
            overlap-add) or ``"fixed"`` (none); default: the model folder's ``order``.
        protected : iterable of paths
            Files never written over, e.g. the other inputs of a batch (``gass-separate`` passes
            all its inputs); a stem named like one is an error. ``path`` itself always is.
        residual : bool
            Also give the mixture minus the stems (``<name>_residual.wav``, or
            ``Separation.residual``): see :func:`gass_modules.inference.stems.separate_to_stems`.

        Returns
        -------
        Separation
            Stems (or their files) and the activity report.

        Notes
        -----
        Stems are written to uniquely named hidden files and renamed when complete, under a
        lock on ``<out_dir>/<name>*`` (``gass_modules.inference.output_files.OutputLock``: a second
        process
        writing the same names fails with a ``FileExistsError`` instead of mixing its stems with
        these).

        Example
        -------
        >>> import soundfile
        >>> tmp = getfixture("tmp_path")
        >>> soundfile.write(tmp / "mix.wav", 0.5 * torch.randn(44100, 2).numpy(), 44100)
        >>> sep = GASSSeparator(modules={"separator": ScaledCopies([1.0, 0.0], 8000)},
        ...                     hparams={"sample_rate": 8000, "num_sources": 2},
        ...                     run_opts={"device": "cpu"})
        >>> result = sep.separate_to_files(tmp / "mix.wav", out_dir=tmp / "out", channels="each")
        >>> result.num_active, [p.name for p in result.files]
        (1, ['mix_s1.wav'])
        >>> soundfile.info(result.files[0]).samplerate, soundfile.info(result.files[0]).channels
        (44100, 2)
        """
        order = resolve_order(order, default=self.order)
        stream = functools.partial(self._stream, chunk_seconds=chunk_seconds, overlap=overlap,
                                   order=order, progress=progress)
        return separate_to_stems(stream, path, model_rate=self.sample_rate,
                                 num_sources=self.num_sources, by_index=self.order == "fixed",
                                 out_dir=out_dir, channels=channels, keep_silent=keep_silent,
                                 threshold_db=threshold_db, overwrite=overwrite,
                                 on_block=on_block, protected=protected, residual=residual)

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
        check_chunking(chunk_seconds, overlap)
        stride = getattr(unwrap_module(self.mods.separator), "stride", 1)  # a chunk's minimum
        stride = stride if isinstance(stride, int) and stride > 0 else 1
        shortest = max(MIN_CHUNK_SECONDS, stride / self.sample_rate)
        if chunk_seconds < shortest:
            raise ValueError(f"chunk_seconds={chunk_seconds!r} is too short: this model needs "
                             f"chunks of at least {shortest:g} s (shorter ones cost a model "
                             "call every few milliseconds); pass a longer chunk_seconds "
                             "(--chunk-seconds) or fix the model folder's chunk_seconds")
        return float(chunk_seconds), float(overlap)

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        """The separator under the interface's precision, without gradients (inference):
        ``[B, T] -> [B, T, S]``."""
        with torch.no_grad(), self.inference_ctx:
            return self.mods.separator(x)

    def _stream(self, signal: torch.Tensor | Reader, *, sample_rate: int,
                chunk_seconds: float | None, overlap: float | None, order: str,
                rows: str = "items", downmix: bool = False, progress: bool = False,
                name: str = "signal") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """:func:`gass_modules.inference.chunking.stream_separation` with this model, on its device,
        with
        the folder's chunking defaults."""
        chunk_seconds, overlap = self.chunking(chunk_seconds, overlap)
        return stream_separation(self._model, signal, sample_rate=sample_rate,
                                 model_rate=self.sample_rate, chunk_seconds=chunk_seconds,
                                 overlap=overlap, order=order, rows=rows, downmix=downmix,
                                 device=self.device, progress=progress, name=name)
