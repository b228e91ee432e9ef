"""Band-split RNN (BSRNN) as a GASS separator lobe, with band plans given in Hz.

Written from Y. Luo and J. Yu, "Music source separation with band-split RNN", IEEE/ACM TASLP
2023 (arXiv 2209.15174), as a general multi-source separator (GASS, Pons et al., ICASSP 2024).
The paper's symbols: the complex spectrogram ``X`` (``F`` bins, ``T`` frames) is split into
``K`` subbands of ``G_k`` bins; each band is normalised and projected to ``N`` features
(``feature_dim``), giving ``Z`` of shape ``[N, K, T]``; interleaved residual BLSTMs model ``Z``
across time (per band) and across bands (per frame); per-band MLPs with a GLU estimate a complex
mask ``M_k`` for each band and each of the ``S`` sources; the masked spectra are inverted with
the iSTFT.

Departures from the paper, all deliberate:

* Normalisation never spans time: the paper's group norm over ``[N, T]`` becomes a LayerNorm over
  the ``N`` features of each (frame, band), so any length works, the output of item ``b`` depends
  only on item ``b``, and zero-padding a mixture does not change the statistics of its frames.
* One mask head per band outputs masks for all ``S`` sources at once (the paper trains one model
  per source).
* The STFT (the shared :class:`~gass_modules.lobes.blocks.STFTEncoder`) zero-pads its centred
  frames rather than reflecting, so lengths down to one hop work and ``torch.export`` adds no
  minimum-length guard.

The skeleton (STFT, band split, blocks, mask MLPs, iSTFT) is :class:`BandSplitSeparator`; BSRNN
passes BLSTM blocks, and other band-split models their own (BS-RoFormer,
:mod:`gass_modules.lobes.bs_roformer`, transformer blocks, with ``norm="rms"``).

Band plans are data: a sequence of ``(low_hz, high_hz)`` bands that starts at 0 Hz, leaves no gap
or overlap and reaches the Nyquist frequency (the last band may end at ``inf``, "the rest").
:func:`band_bins` maps a plan to STFT bin ranges for a sample rate and ``n_fft`` (a bin at
frequency ``f_j = j * sample_rate / n_fft`` belongs to the band with ``low <= f_j < high``; the
Nyquist bin to the last band), truncating the bands above Nyquist. Presets (:data:`BAND_PLANS`):

* ``"music"``: the paper's plan. 100 Hz bands up to 1 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz,
  1 kHz up to 16 kHz, 2 kHz up to 20 kHz, the rest one band (41 bands at 44.1 kHz).
* ``"speech"``: for 8 and 16 kHz. 100 Hz bands up to 2 kHz (pitch harmonics and the first two
  formants), 200 Hz up to 4 kHz, 500 Hz up to 8 kHz, the rest one band (30 bands at 8 kHz, 38 at
  16 kHz).
* ``"gass"``: our plan for GASS's 16 kHz mixes of speech, music and sound events. 125 Hz bands up to
  2 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz, then the music plan's 1 and 2 kHz bands and the
  rest. Every width is a multiple of the 31.25 Hz bin spacing of the GASS STFT (16 kHz,
  ``n_fft=512``), so the bands of a segment hold equal numbers of bins (4, 8, 16; 32 bands).
* ``"roformer"``: BS-RoFormer's plan (Lu et al., ICASSP 2024), given in the paper in bins at
  44.1 kHz and ``n_fft=2048`` (:func:`bin_width_bands`): bands of 2 bins up to 1 kHz, 4 to 2 kHz,
  12 to 4 kHz, 24 to 8 kHz, 48 to 16 kHz and the rest in two (62 bands at 44.1 kHz).
* ``"tiger"``: TIGER's speech plan (Xu et al., ICLR 2025, :mod:`gass_modules.lobes.tiger`). 25 Hz
  bands up to 1 kHz, 100 Hz up to 2 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz, the rest one
  band (66 bands at 16 kHz with ``n_fft=640``: one bin each below 1 kHz).
* ``"tiger_dnr"``: TIGER's plan for 44.1 kHz cinematic audio (DnR). 50 Hz bands up to 1 kHz,
  100 Hz up to 2 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz, 1 kHz up to 16 kHz, 2 kHz up to
  20 kHz, the rest one band (57 bands at 44.1 kHz).

``torch.export`` cannot trace ``nn.LSTM`` with a symbolic sequence length (its decomposition
unrolls time and pins the length, pytorch/pytorch#115092), so :class:`ExportableBLSTM` runs the
same recurrence with ``torch``'s ``scan`` while exporting and the fused ``nn.LSTM`` kernel
otherwise, on the same parameters.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction

import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from gass_modules.lobes.base import Separator, check_positive_int
from gass_modules.lobes.blocks import ISTFTDecoder, STFTEncoder, apply_complex_masks

Band = tuple[float, float]

# torch 2.11's scan partitioner sets its own logger to DEBUG when imported (a leftover), so every
# export of a scan printed each traced graph; let it follow torch's logging settings instead.
logging.getLogger("torch._higher_order_ops.partitioner").setLevel(logging.NOTSET)


def uniform_bands(width_hz: float, low_hz: float, high_hz: float) -> list[Band]:
    """Bands of equal width ``width_hz`` tiling ``[low_hz, high_hz)``: a segment of a band plan.

    Arguments
    ---------
    width_hz : float
        Bandwidth in Hz, > 0.
    low_hz : float
        Lower edge of the first band in Hz.
    high_hz : float
        Upper edge of the last band in Hz; ``high_hz - low_hz`` must be a multiple of
        ``width_hz``.

    Returns
    -------
    list of (float, float)
        ``(low, high)`` bands in Hz, in increasing order.

    Example
    -------
    >>> uniform_bands(250, 1000, 2000)
    [(1000.0, 1250.0), (1250.0, 1500.0), (1500.0, 1750.0), (1750.0, 2000.0)]
    >>> uniform_bands(300, 0, 1000)
    Traceback (most recent call last):
    ...
    ValueError: [0, 1000) Hz is not a whole number of 300 Hz bands (3.33); pick a width ...
    """
    width, low, high = (_exact_hz(v, name) for v, name in
                        ((width_hz, "width_hz"), (low_hz, "low_hz"), (high_hz, "high_hz")))
    if width <= 0 or high <= low:
        raise ValueError(f"expected width_hz > 0 and low_hz < high_hz, got width_hz={width_hz}, "
                         f"low_hz={low_hz}, high_hz={high_hz}")
    count = (high - low) / width
    if count.denominator != 1:
        raise ValueError(f"[{float(low):g}, {float(high):g}) Hz is not a whole number of "
                         f"{float(width):g} Hz bands ({float(count):.3g}); pick a width that "
                         f"divides {float(high - low):g} Hz or move the edges")
    return [(float(low + i * width), float(low + (i + 1) * width)) for i in range(int(count))]


def _exact_hz(value, name: str) -> Fraction:
    """A finite, non-negative frequency as an exact fraction (decimal literals stay exact)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected {name} as a number of Hz, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected {name} finite and >= 0 Hz, got {value}")
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _preset(segments: Sequence[tuple[float, float]]) -> tuple[Band, ...]:
    """Concatenates ``(width_hz, up_to_hz)`` segments from 0 Hz, plus one band for the rest."""
    bands, low = [], 0.0
    for width, up_to in segments:
        bands += uniform_bands(width, low, up_to)
        low = float(up_to)
    return (*bands, (low, math.inf))


#: The paper's music plan (Luo & Yu 2023): 41 bands at 44.1 kHz.
MUSIC_PLAN = _preset([(100, 1000), (250, 4000), (500, 8000), (1000, 16000), (2000, 20000)])
#: A plan for 8 and 16 kHz speech: 100 Hz resolution where pitch and the first formants live.
SPEECH_PLAN = _preset([(100, 2000), (200, 4000), (500, 8000)])
#: Our plan for GASS at 16 kHz: widths are multiples of the 31.25 Hz bin spacing of n_fft=512.
GASS_PLAN = _preset([(125, 2000), (250, 4000), (500, 8000), (1000, 16000), (2000, 20000)])


def bin_width_bands(widths: Sequence[tuple[int, int]], sample_rate: int,
                    n_fft: int) -> tuple[Band, ...]:
    """A band plan in Hz from band widths in STFT bins, plus one band for the rest.

    Some papers give their plan in bins of one STFT (BS-RoFormer: "2 bins per band below 1 kHz,
    ..." at 44.1 kHz, ``n_fft = 2048``). This writes such a plan in Hz: bin ``j`` lies at
    ``j * sample_rate / n_fft``, so :func:`band_bins` at that rate and ``n_fft`` gives back
    exactly these widths, and other rates get the same bands in Hz.

    Arguments
    ---------
    widths : sequence of (int, int)
        ``(bins_per_band, num_bands)`` segments from bin 0.
    sample_rate : int
        Sample rate in Hz of the STFT the widths refer to.
    n_fft : int
        Its FFT size.

    Returns
    -------
    tuple of (float, float)
        The bands in Hz; the last one, ``(edge, inf)``, holds the bins above the segments.

    Example
    -------
    >>> plan = bin_width_bands([(2, 2), (4, 1)], sample_rate=8000, n_fft=64)
    >>> plan
    ((0.0, 250.0), (250.0, 500.0), (500.0, 1000.0), (1000.0, inf))
    >>> [end - start for start, end in band_bins(plan, 8000, 64)]
    [2, 2, 4, 25]
    """
    check_positive_int(sample_rate=sample_rate, n_fft=n_fft)
    bands, start = [], 0
    for segment in widths:
        if isinstance(segment, (str, bytes)) or not isinstance(segment, Sequence) or len(
                segment) != 2:
            raise ValueError(f"expected (bins_per_band, num_bands) pairs, got {segment!r}")
        check_positive_int(bins_per_band=segment[0], num_bands=segment[1])
        for _ in range(segment[1]):
            edges = (Fraction(start * sample_rate, n_fft),
                     Fraction((start + segment[0]) * sample_rate, n_fft))
            bands.append((float(edges[0]), float(edges[1])))
            start += segment[0]
    if start > n_fft // 2:
        raise ValueError(f"the segments cover {start} bins, more than the {n_fft // 2 + 1} of "
                         f"n_fft={n_fft} can leave for a last band")
    return (*bands, (float(Fraction(start * sample_rate, n_fft)), math.inf))


#: BS-RoFormer's plan (Lu et al. 2023, section 4.4), in bins at 44.1 kHz and n_fft = 2048
#: (21.5 Hz apart): 2 bins per band below 1 kHz, 4 to 2 kHz, 12 to 4 kHz, 24 to 8 kHz, 48 to
#: 16 kHz, each segment rounded up to whole bands (24, 12, 8, 8, 8 bands ending at bins 48, 96,
#: 192, 384, 768), and the 257 bins above in two bands (128 and 129): 62 bands.
ROFORMER_PLAN = bin_width_bands([(2, 24), (4, 12), (12, 8), (24, 8), (48, 8), (128, 1)],
                                sample_rate=44100, n_fft=2048)
#: TIGER's speech plan (Xu et al. 2025): 66 bands at 16 kHz, 25 Hz wide below 1 kHz.
TIGER_PLAN = _preset([(25, 1000), (100, 2000), (250, 4000), (500, 8000)])
#: TIGER's plan for DnR (44.1 kHz): 57 bands.
TIGER_DNR_PLAN = _preset([(50, 1000), (100, 2000), (250, 4000), (500, 8000), (1000, 16000),
                          (2000, 20000)])
#: Preset band plans by name (a model card may name one: ``band_plan: gass``).
BAND_PLANS = {"music": MUSIC_PLAN, "speech": SPEECH_PLAN, "gass": GASS_PLAN,
              "roformer": ROFORMER_PLAN, "tiger": TIGER_PLAN, "tiger_dnr": TIGER_DNR_PLAN}


def check_band_plan(bands: Sequence[Sequence[float]], nyquist_hz: float) -> list[Band]:
    """Validates a band plan and returns it as a list of ``(low_hz, high_hz)`` float pairs.

    A valid plan is a non-empty sequence of bands with ``low < high``, sorted, starting at 0 Hz,
    without gaps or overlaps (each band starts where the previous one ends), whose last band
    reaches ``nyquist_hz`` (``inf`` is allowed for the last upper edge).

    Arguments
    ---------
    bands : sequence of (float, float)
        The plan in Hz.
    nyquist_hz : float
        Half the sample rate; the plan must cover ``[0, nyquist_hz]``.

    Returns
    -------
    list of (float, float)
        The validated bands.

    Example
    -------
    >>> check_band_plan([(0, 1000), (1000, 4000)], nyquist_hz=4000)
    [(0.0, 1000.0), (1000.0, 4000.0)]
    >>> check_band_plan([(0, 1000), (1200, 4000)], nyquist_hz=4000)
    Traceback (most recent call last):
    ...
    ValueError: band plan has a gap: band 0 ends at 1000 Hz but band 1 starts at 1200 Hz; ...
    """
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence) or len(bands) == 0:
        raise ValueError(f"expected a band plan as a non-empty sequence of (low_hz, high_hz) "
                         f"bands or one of {sorted(BAND_PLANS)}, got {bands!r}")
    plan = []
    for i, band in enumerate(bands):
        if isinstance(band, (str, bytes)) or not isinstance(band, Sequence) or len(band) != 2:
            raise ValueError(f"expected band {i} as a (low_hz, high_hz) pair, got {band!r}")
        low, high = band
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"expected band {i} {name} edge as a number of Hz, got {value!r}")
        if low < 0 or math.isinf(low):
            raise ValueError(f"expected band {i} to start at a finite frequency >= 0 Hz, got "
                             f"{low}")
        if high == low:
            raise ValueError(f"band {i} [{low:g}, {high:g}) Hz is empty; remove it or give it a "
                             "width")
        if high < low:
            raise ValueError(f"band {i} ({low:g}, {high:g}) ends below where it starts; write "
                             "bands as (low_hz, high_hz)")
        plan.append((float(low), float(high)))
    for i in range(1, len(plan)):
        if plan[i][0] <= plan[i - 1][0]:
            raise ValueError(f"band plan is not sorted: band {i} starts at {plan[i][0]:g} Hz, not "
                             f"above band {i - 1} ({plan[i - 1][0]:g} Hz); sort the bands by their "
                             "lower edge")
    if plan[0][0] != 0:
        raise ValueError(f"band plan must start at 0 Hz, its first band starts at "
                         f"{plan[0][0]:g} Hz; add a band from 0 Hz")
    for i in range(1, len(plan)):
        end, start = plan[i - 1][1], plan[i][0]
        if start > end:
            raise ValueError(f"band plan has a gap: band {i - 1} ends at {end:g} Hz but band {i} "
                             f"starts at {start:g} Hz; make each band start where the previous "
                             "one ends")
        if start < end:
            raise ValueError(f"band plan has an overlap: band {i - 1} ends at {end:g} Hz but band "
                             f"{i} starts at {start:g} Hz; make each band start where the "
                             "previous one ends")
    if plan[-1][1] < nyquist_hz:
        raise ValueError(f"band plan covers 0..{plan[-1][1]:g} Hz but must reach the Nyquist "
                         f"frequency {nyquist_hz:g} Hz; extend the last band (inf means 'the "
                         "rest')")
    return plan


def band_bins(
    bands: str | Sequence[Sequence[float]], sample_rate: int, n_fft: int
) -> list[tuple[int, int]]:
    """Maps a band plan in Hz to STFT bin ranges ``[start, end)`` for ``sample_rate`` and ``n_fft``.

    Bin ``j`` (frequency ``j * sample_rate / n_fft``) belongs to the band with ``low <= f_j <
    high``; bands at or above Nyquist are dropped and the last kept band takes every bin up to and
    including Nyquist. Each band must hold at least one bin.

    Arguments
    ---------
    bands : str or sequence of (float, float)
        A preset name from :data:`BAND_PLANS` or a plan in Hz (see :func:`check_band_plan`).
    sample_rate : int
        Sample rate in Hz.
    n_fft : int
        FFT size; the one-sided spectrum has ``n_fft // 2 + 1`` bins.

    Returns
    -------
    list of (int, int)
        Contiguous bin ranges covering ``0 .. n_fft // 2``.

    Example
    -------
    >>> band_bins([(0, 1000), (1000, 2000), (2000, float("inf"))], sample_rate=8000, n_fft=16)
    [(0, 2), (2, 4), (4, 9)]
    >>> band_bins([(0, 1000), (1000, 2000), (2000, float("inf"))], sample_rate=4000, n_fft=16)
    [(0, 4), (4, 9)]
    >>> [end - start for start, end in band_bins("gass", 16000, 512)][:3]
    [4, 4, 4]
    """
    for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected {name} as a positive int, got {value!r}")
    if n_fft < 2:
        raise ValueError(f"expected n_fft >= 2, got {n_fft}")
    if isinstance(bands, str):
        if bands not in BAND_PLANS:
            raise ValueError(f"unknown band plan {bands!r}; use one of {sorted(BAND_PLANS)} or a "
                             "list of (low_hz, high_hz) bands")
        bands = BAND_PLANS[bands]
    nyquist = sample_rate / 2
    plan = [band for band in check_band_plan(bands, nyquist) if band[0] < nyquist]
    num_bins = n_fft // 2 + 1
    # First bin at or above an edge: ceil(edge * n_fft / sample_rate), exactly (Fraction).
    starts = [math.ceil(Fraction(str(low)) * n_fft / sample_rate) for low, _ in plan]
    ranges = list(zip(starts, starts[1:] + [num_bins]))
    for (low, high), (start, end) in zip(plan, ranges):
        if end <= start:
            spacing = sample_rate / n_fft
            raise ValueError(f"band [{low:g}, {min(high, nyquist):g}) Hz holds no STFT bin at "
                             f"sample_rate={sample_rate} Hz, n_fft={n_fft} (bins are {spacing:g} "
                             "Hz apart); widen or merge the band, or use a larger n_fft")
    return ranges


class BandGroups(nn.Module):
    """Bands grouped by bin count, so per-band layers run as one grouped op per width.

    BSRNN's layers are per band (band ``k`` has its own norm and weights). Bands with the same
    number of bins ``G`` are stacked, and their per-band LayerNorms and linear maps run as one
    batched op per layer: the same parameters as separate modules, a handful of ops instead of
    ``K`` (which also keeps ``torch.export`` tracing fast).

    Arguments
    ---------
    bins : sequence of (int, int)
        Contiguous bin ranges ``[start, end)`` from bin 0 (see :func:`band_bins`).

    Example
    -------
    >>> groups = BandGroups([(0, 2), (2, 5), (5, 7)])
    >>> groups.widths, groups.members
    ([2, 3], [[0, 2], [1]])
    >>> groups.band_index.tolist(), groups.bin_index[0].tolist()
    ([0, 2, 1], [0, 1, 5, 6])
    """

    def __init__(self, bins: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.bins = _check_bins(bins)
        self.num_bins = self.bins[-1][1]
        widths = sorted({end - start for start, end in self.bins})
        self.widths = widths
        self.members = [[k for k, (s, e) in enumerate(self.bins) if e - s == w] for w in widths]
        # Gather indices per group (bins of its bands, in band order), and the permutations that
        # put the concatenated group outputs back in band order and in bin order.
        for g, members in enumerate(self.members):
            index = [j for k in members for j in range(*self.bins[k])]
            self.register_buffer(f"_bins_{g}", torch.tensor(index), persistent=False)
            self.register_buffer(f"_bands_{g}", torch.tensor(members), persistent=False)
        grouped_bands = [k for members in self.members for k in members]
        grouped_bins = [j for members in self.members for k in members
                        for j in range(*self.bins[k])]
        self.register_buffer("band_index", _inverse(grouped_bands), persistent=False)
        self.register_buffer("_bin_order", _inverse(grouped_bins), persistent=False)

    @property
    def bin_index(self) -> list[torch.Tensor]:
        """The bins of each group's bands, in band order (one LongTensor per group)."""
        return [getattr(self, f"_bins_{g}") for g in range(len(self.widths))]

    def gather_bands(self, z: torch.Tensor, group: int) -> torch.Tensor:
        """Selects a group's bands from ``z`` along dim 2.

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, ...]``.
        group : int
            Group index.

        Returns
        -------
        torch.Tensor
            ``[B, T, n_g, ...]``.

        Example
        -------
        >>> groups = BandGroups([(0, 2), (2, 5), (5, 7)])
        >>> groups.gather_bands(torch.arange(3.).view(1, 1, 3), 0)
        tensor([[[0., 2.]]])
        """
        return z.index_select(2, getattr(self, f"_bands_{group}"))

    def locate(self, band: int) -> tuple[int, int]:
        """The group of ``band`` and its position in that group.

        Arguments
        ---------
        band : int
            Band index ``k``.

        Returns
        -------
        (int, int)
            ``(group, position)``.

        Example
        -------
        >>> BandGroups([(0, 2), (2, 5), (5, 7)]).locate(2)
        (0, 1)
        """
        for g, members in enumerate(self.members):
            if band in members:
                return g, members.index(band)
        raise IndexError(f"band {band} out of range: the plan has {len(self.bins)} bands")

    def gather_bins(self, x: torch.Tensor, group: int) -> torch.Tensor:
        """Selects the bins of a group's bands from ``x`` along dim 2.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, F, ...]``.
        group : int
            Group index.

        Returns
        -------
        torch.Tensor
            ``[B, T, n_g, G, ...]``: the group's ``n_g`` bands of ``G`` bins.

        Example
        -------
        >>> groups = BandGroups([(0, 2), (2, 5), (5, 7)])
        >>> groups.gather_bins(torch.arange(7.).view(1, 1, 7), 0)
        tensor([[[[0., 1.],
                  [5., 6.]]]])
        """
        index = self.bin_index[group]
        return x.index_select(2, index).unflatten(2, (len(self.members[group]),
                                                      self.widths[group]))

    def bands_in_order(self, per_group: Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenates per-group outputs along dim 2 and restores band order.

        Arguments
        ---------
        per_group : sequence of torch.Tensor
            ``[B, T, n_g, ...]`` for each group.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, ...]``.

        Example
        -------
        >>> groups = BandGroups([(0, 2), (2, 5), (5, 7)])
        >>> groups.bands_in_order([torch.tensor([[[0., 2.]]]), torch.tensor([[[1.]]])])
        tensor([[[0., 1., 2.]]])
        """
        return torch.cat(list(per_group), dim=2).index_select(2, self.band_index)

    def bins_in_order(self, per_group: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
        """Concatenates per-group bins (``[..., n_g * G, ...]`` at ``dim``) and restores bin order.

        Arguments
        ---------
        per_group : sequence of torch.Tensor
            Per group, the bins of its bands flattened along ``dim``, in band order.
        dim : int
            The bin axis.

        Returns
        -------
        torch.Tensor
            The same tensors with ``F`` bins along ``dim``, in frequency order.

        Example
        -------
        >>> groups = BandGroups([(0, 2), (2, 5), (5, 7)])
        >>> groups.bins_in_order([torch.tensor([0., 1., 5., 6.]), torch.tensor([2., 3., 4.])], 0)
        tensor([0., 1., 2., 3., 4., 5., 6.])
        """
        return torch.cat(list(per_group), dim=dim).index_select(dim, self._bin_order)


def _inverse(order: Sequence[int]) -> torch.Tensor:
    """The permutation that undoes ``order`` (``x[order][inverse] == x``)."""
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return inverse


#: Per-band normalisations of :class:`BandSplit` and :class:`MaskEstimator`: ``"layer"``
#: (LayerNorm per frame, BSRNN) or ``"rms"`` (RMSNorm per frame, a gain and no bias:
#: BS-RoFormer); :class:`BandSplit` also takes ``"band"`` (statistics over the band's features
#: and all frames, TIGER).
BAND_NORMS = ("layer", "rms")
#: What :class:`BandSplit` accepts.
BAND_SPLIT_NORMS = (*BAND_NORMS, "band")
#: Epsilon of both (added to the variance, or to the mean square).
BAND_NORM_EPS = 1e-5


class _GroupedBandLayers(nn.Module):
    """Per-band norm + MLP for ``n`` bands of one width group, as batched matmuls.

    Band ``i`` of the group has its own norm affine (LayerNorm: gain and bias; RMSNorm: gain) and
    its own ``nn.Linear``-shaped weights (``weight[i]`` is ``[in, out]``, initialised as
    ``nn.Linear`` does), applied to all bands at once with ``torch.baddbmm`` (torch has no
    per-group linear module; a grouped 1x1 ``Conv1d`` computes the same but measured 3-4x slower
    on CPU). Linear layers are joined by tanh. With ``norm="affine"`` the input arrives
    normalised (statistics taken by the caller, :class:`BandSplit` with ``norm="band"``) and only
    the per-band gain and bias are applied.
    """

    def __init__(self, num_bands: int, in_features: int, widths: Sequence[int],
                 norm: str = "layer") -> None:
        super().__init__()
        if norm not in (*BAND_NORMS, "affine"):
            raise ValueError(f"unknown band norm {norm!r}; use one of {BAND_NORMS}")
        self.in_features = in_features
        self.norm = norm
        self.norm_weight = nn.Parameter(torch.ones(num_bands, in_features))
        if norm != "rms":
            self.norm_bias = nn.Parameter(torch.zeros(num_bands, in_features))
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        features = in_features
        for width in widths:
            bound = 1 / math.sqrt(features)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(num_bands, features, width)
                                             .uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_bands, 1, width)
                                            .uniform_(-bound, bound)))
            features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[M, n, in_features]`` -> ``[M, n, out_features]``, each band with its own layers."""
        if self.norm == "layer":  # a constant of the module, not a branch on shapes
            y = nn.functional.layer_norm(x, (self.in_features,), eps=BAND_NORM_EPS)
            y = y * self.norm_weight + self.norm_bias  # per row and band
        elif self.norm == "affine":  # normalised by the caller
            y = x * self.norm_weight + self.norm_bias
        else:
            # float32, as autocast runs layer_norm (bf16 inputs come from the blocks)
            y = nn.functional.rms_norm(x.float(), (self.in_features,), eps=BAND_NORM_EPS)
            y = y * self.norm_weight
        y = y.transpose(0, 1)  # [n, M, in]
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            y = torch.baddbmm(bias, torch.tanh(y) if i else y, weight)  # [n, M, width]
        return y.transpose(0, 1)  # [M, n, out]

    def band_parameters(self, position: int) -> list[torch.Tensor]:
        """Norm weight, norm bias (not for RMSNorm), then (weight [out, in], bias [out]) of each
        linear layer."""
        params = [self.norm_weight[position]]
        if self.norm != "rms":
            params.append(self.norm_bias[position])
        for weight, bias in zip(self.weights, self.biases):
            params += [weight[position].t(), bias[position, 0]]
        return params


class BandSplit(nn.Module):
    """Band split: per-band norm and linear map of ``[Re, Im]`` bins to ``N`` features.

    Band ``k`` holds ``G_k`` bins; the ``2 G_k`` real and imaginary parts of each frame
    (interleaved: bin ``j`` gives features ``2j`` and ``2j + 1``) are normalised, given the
    band's own gain (and bias), and projected to ``feature_dim`` by the band's own linear layer.
    Bands of equal width run together (:class:`BandGroups`). Normalisation (``norm``):

    * ``"layer"``: a LayerNorm over the ``2 G_k`` features of each frame (BSRNN). Nothing spans
      time, but a band of one bin (two features) keeps only the sign of ``Re - Im``;
    * ``"rms"``: an RMSNorm over them, a gain and no bias (BS-RoFormer);
    * ``"band"``: one mean and variance per item and band over its ``2 G_k`` features and all
      frames (``GroupNorm(1, 2 G_k)`` over ``[2 G_k, T]``, as TIGER's band split): the band's
      level relative to its other frames survives, so one-bin bands work.

    Arguments
    ---------
    bins : sequence of (int, int)
        Contiguous bin ranges ``[start, end)`` from bin 0 (see :func:`band_bins`).
    feature_dim : int
        ``N``, the feature size of every band.
    norm : str
        ``"layer"``, ``"rms"`` or ``"band"`` (see above, :data:`BAND_SPLIT_NORMS`).
    eps : float
        Added to the variance of ``"band"`` (the other norms use :data:`BAND_NORM_EPS`).

    Example
    -------
    >>> split = BandSplit([(0, 2), (2, 5)], feature_dim=8)
    >>> split(torch.randn(3, 5, 7, dtype=torch.complex64)).shape
    torch.Size([3, 7, 2, 8])
    >>> one_bin = BandSplit([(0, 1), (1, 3)], feature_dim=4, norm="band")
    >>> one_bin(torch.randn(2, 3, 6, dtype=torch.complex64)).shape
    torch.Size([2, 6, 2, 4])
    """

    def __init__(self, bins: Sequence[tuple[int, int]], feature_dim: int,
                 norm: str = "layer", eps: float = BAND_NORM_EPS) -> None:
        super().__init__()
        check_positive_int(feature_dim=feature_dim)
        if norm not in BAND_SPLIT_NORMS:
            raise ValueError(f"norm must be one of {BAND_SPLIT_NORMS}, got {norm!r}")
        self.norm = norm
        self.eps = eps
        self.groups = BandGroups(bins)
        self.bins = self.groups.bins
        self.num_bins = self.groups.num_bins
        self.layers = nn.ModuleList(
            _GroupedBandLayers(len(members), 2 * width, [feature_dim],
                               "affine" if norm == "band" else norm)
            for width, members in zip(self.groups.widths, self.groups.members)
        )

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Splits a complex spectrogram into band features.

        Arguments
        ---------
        spec : torch.Tensor
            ``[B, F, T]`` complex spectrogram with ``F`` the number of bins of the plan.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, N]`` band features.
        """
        if not spec.is_complex() or spec.dim() != 3 or spec.shape[1] != self.num_bins:
            raise ValueError(f"expected a complex spectrogram [B, {self.num_bins}, T], got "
                             f"{spec.dtype} {tuple(spec.shape)}")
        parts = torch.view_as_real(spec).transpose(1, 2)  # [B, T, F, 2]
        batch = parts.shape[0]
        features = []
        for g, layers in enumerate(self.layers):
            band_parts = self.groups.gather_bins(parts, g).flatten(3)  # [B, T, n_g, 2G]
            if self.norm == "band":  # statistics per item and band, over frames and features
                var, mean = torch.var_mean(band_parts, dim=(1, 3), keepdim=True, correction=0)
                band_parts = (band_parts - mean) * torch.rsqrt(var + self.eps)
            out = layers(band_parts.flatten(0, 1))  # [B*T, n_g, N]
            features.append(out.unflatten(0, (batch, -1)))  # [B, T, n_g, N]
        return self.groups.bands_in_order(features)  # [B, T, K, N]

    def band_parameters(self, band: int) -> list[torch.Tensor]:
        """One band's parameters: norm weight and bias ``[2 G_k]`` (no bias for RMSNorm), weight
        ``[N, 2 G_k]``, bias.

        Arguments
        ---------
        band : int
            Band index ``k``.

        Returns
        -------
        list of torch.Tensor
            Views into the grouped parameters.

        Example
        -------
        >>> split = BandSplit([(0, 2), (2, 5)], feature_dim=8)
        >>> [tuple(p.shape) for p in split.band_parameters(1)]
        [(6,), (6,), (8, 6), (8,)]
        """
        group, position = self.groups.locate(band)
        return self.layers[group].band_parameters(position)


class ExportableBLSTM(nn.Module):
    """A one-layer bidirectional LSTM that also exports with a symbolic sequence length.

    Eager calls (training, inference) run ``nn.LSTM``; under ``torch.export`` the same equations
    run with ``scan`` on the same parameters, because ``nn.LSTM``'s export decomposition pins the
    sequence length (pytorch/pytorch#115092).

    Arguments
    ---------
    input_size : int
        Input features.
    hidden_size : int
        Hidden units per direction; the output has ``2 * hidden_size`` features.

    Example
    -------
    >>> blstm = ExportableBLSTM(4, 6)
    >>> blstm(torch.randn(2, 9, 4)).shape
    torch.Size([2, 9, 12])
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_positive_int(input_size=input_size, hidden_size=hidden_size)
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs both directions over the sequence axis.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, L, input_size]`` sequences.

        Returns
        -------
        torch.Tensor
            ``[B, L, 2 * hidden_size]``: forward then backward hidden states.
        """
        if torch.compiler.is_exporting():
            return _scan_blstm(x, self.lstm)  # [B, L, 2H]
        return self.lstm(x)[0]  # [B, L, 2H]


def _scan_blstm(x: torch.Tensor, lstm: nn.LSTM) -> torch.Tensor:
    """``lstm(x)[0]`` for a one-layer batch-first BLSTM, as one ``scan`` over both directions.

    The backward direction runs on the time-reversed input, stacked with the forward one, so one
    scan step advances both (nn.LSTM's equations, gate order i, f, g, o).
    """
    w_hh = torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse]).transpose(1, 2)  # [2,H,4H]
    gates_in = torch.stack([
        nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0),
        nn.functional.linear(x, lstm.weight_ih_l0_reverse,
                             lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse).flip(1),
    ]).permute(2, 0, 1, 3).contiguous()  # [L, 2, B, 4H]: forward, and backward in reversed time
    state = gates_in.new_zeros(2, gates_in.shape[2], lstm.hidden_size)  # [2, B, H]

    def step(carry, gates_t):  # gates_t [2, B, 4H]
        h, c = carry  # [2, B, H] each
        gates = gates_t + torch.bmm(h, w_hh)  # [2, B, 4H]
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c), h.clone()

    _, hidden = scan(step, (state, state.clone()), gates_in, dim=0)  # [L, 2, B, H]
    forward, backward = hidden.permute(1, 2, 0, 3).unbind(0)  # [B, L, H] each
    return torch.cat([forward, backward.flip(1)], dim=-1)  # [B, L, 2H]


class ResidualBLSTM(nn.Module):
    """``x + FC(BLSTM(LayerNorm(x)))`` along the sequence axis: one half of a BSRNN block.

    Arguments
    ---------
    feature_dim : int
        ``N``, the input and output features.
    hidden_dim : int
        BLSTM hidden units per direction.

    Example
    -------
    >>> layer = ResidualBLSTM(8, 16)
    >>> layer(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        check_positive_int(feature_dim=feature_dim, hidden_dim=hidden_dim)
        self.norm = nn.LayerNorm(feature_dim)
        self.blstm = ExportableBLSTM(feature_dim, hidden_dim)
        self.fc = nn.Linear(2 * hidden_dim, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the residual BLSTM.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, L, N]`` sequences.

        Returns
        -------
        torch.Tensor
            ``[B, L, N]``.
        """
        return x + self.fc(self.blstm(self.norm(x)))  # [B, L, N]


class BandSequenceBlock(nn.Module):
    """One band-and-sequence block: a residual BLSTM across time, then one across bands.

    Arguments
    ---------
    feature_dim : int
        ``N``.
    hidden_dim : int
        BLSTM hidden units per direction.

    Example
    -------
    >>> block = BandSequenceBlock(8, 16)
    >>> block(torch.randn(2, 7, 3, 8)).shape
    torch.Size([2, 7, 3, 8])
    """

    def __init__(self, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.time_rnn = ResidualBLSTM(feature_dim, hidden_dim)
        self.band_rnn = ResidualBLSTM(feature_dim, hidden_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Models ``z`` across time (per band), then across bands (per frame).

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, T, K, N]``.
        """
        return across_time_then_bands(z, self.time_rnn, self.band_rnn)  # [B, T, K, N]


def across_time_then_bands(
    z: torch.Tensor,
    time_model: Callable[[torch.Tensor], torch.Tensor],
    band_model: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Applies a sequence model across time within each band, then one across bands per frame.

    The interleaving of the band-split separators (BSRNN's BLSTMs, BS-RoFormer's transformers):
    the bands of every item become sequences over time ``[B*K, T, N]``, then the frames become
    sequences over bands ``[B*T, K, N]``.

    Arguments
    ---------
    z : torch.Tensor
        ``[B, T, K, N]`` band features.
    time_model : callable
        ``[M, T, N] -> [M, T, N]``, applied with ``M = B * K``.
    band_model : callable
        ``[M, K, N] -> [M, K, N]``, applied with ``M = B * T``.

    Returns
    -------
    torch.Tensor
        ``[B, T, K, N]``.

    Example
    -------
    >>> z = torch.arange(24.).view(1, 3, 2, 4)  # [B, T, K, N]
    >>> cumsum = lambda x: x.cumsum(1)  # along the sequence axis
    >>> out = across_time_then_bands(z, cumsum, lambda x: x)
    >>> torch.equal(out, z.cumsum(1)), torch.equal(across_time_then_bands(z, lambda x: x, cumsum),
    ...                                             z.cumsum(2))
    (True, True)
    """
    batch, frames, bands, _ = z.shape
    z = z.transpose(1, 2).flatten(0, 1)  # [B*K, T, N]
    z = time_model(z).unflatten(0, (batch, bands)).transpose(1, 2)  # [B, T, K, N]
    z = band_model(z.flatten(0, 1))  # [B*T, K, N]
    return z.unflatten(0, (batch, frames))  # [B, T, K, N]


class MaskEstimator(nn.Module):
    """Per-band MLPs with a GLU that estimate complex masks for ``S`` sources, merged over bands.

    Band ``k``: Norm(N) -> Linear(N, hidden) -> tanh -> Linear(hidden, 2 * S * G_k * 2) -> GLU
    (first half times the sigmoid of the second), giving the real and imaginary mask of each of
    its ``G_k`` bins for each source (output feature ``(s * G_k + j) * 2 + c`` is source ``s``,
    bin ``j``, real ``c = 0`` or imaginary ``c = 1``). The norm is a LayerNorm (BSRNN) or an
    RMSNorm (BS-RoFormer). Bands of equal width run together.

    Arguments
    ---------
    bins : sequence of (int, int)
        The bin ranges of the bands (as for :class:`BandSplit`).
    feature_dim : int
        ``N``.
    num_sources : int
        ``S``.
    hidden_dim : int
        Hidden units of each MLP (both papers use ``4 N``).
    norm : str
        ``"layer"`` (LayerNorm) or ``"rms"`` (RMSNorm), see :data:`BAND_NORMS`.

    Example
    -------
    >>> masks = MaskEstimator([(0, 2), (2, 5)], feature_dim=8, num_sources=3, hidden_dim=16)
    >>> masks(torch.randn(4, 7, 2, 8)).shape
    torch.Size([4, 3, 5, 7, 2])
    """

    def __init__(self, bins: Sequence[tuple[int, int]], feature_dim: int, num_sources: int,
                 hidden_dim: int, norm: str = "layer") -> None:
        super().__init__()
        check_positive_int(feature_dim=feature_dim, num_sources=num_sources, hidden_dim=hidden_dim)
        self.groups = BandGroups(bins)
        self.bins = self.groups.bins
        self.num_sources = num_sources
        self.feature_dim = feature_dim
        self.layers = nn.ModuleList(
            _GroupedBandLayers(len(members), feature_dim,
                               [hidden_dim, 2 * num_sources * width * 2], norm)
            for width, members in zip(self.groups.widths, self.groups.members)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Estimates the masks of every bin.

        Arguments
        ---------
        z : torch.Tensor
            ``[B, T, K, N]`` band features.

        Returns
        -------
        torch.Tensor
            ``[B, S, F, T, 2]`` real and imaginary masks, bands merged in bin order.
        """
        if z.dim() != 4 or z.shape[2] != len(self.bins) or z.shape[3] != self.feature_dim:
            raise ValueError(f"expected band features [B, T, {len(self.bins)}, "
                             f"{self.feature_dim}], got {tuple(z.shape)}")
        batch = z.shape[0]
        masks = []
        for g, (width, layers) in enumerate(zip(self.groups.widths, self.layers)):
            bands = self.groups.gather_bands(z, g).flatten(0, 1)  # [B*T, n_g, N]
            out = nn.functional.glu(layers(bands), dim=-1)  # [B*T, n_g, S*G*2]
            out = out.unflatten(-1, (self.num_sources, width, 2)).transpose(1, 2)  # [BT,S,n_g,G,2]
            masks.append(out.flatten(2, 3))  # [B*T, S, n_g*G, 2]
        merged = self.groups.bins_in_order(masks, dim=2)  # [B*T, S, F, 2]
        return merged.unflatten(0, (batch, -1)).permute(0, 2, 3, 1, 4)  # [B, S, F, T, 2]

    def band_parameters(self, band: int) -> list[torch.Tensor]:
        """Parameters of one band's MLP: norm weight, norm bias (LayerNorm only), W1
        ``[hidden, N]``, b1, W2, b2.

        Arguments
        ---------
        band : int
            Band index ``k``.

        Returns
        -------
        list of torch.Tensor
            Views into the grouped parameters.

        Example
        -------
        >>> masks = MaskEstimator([(0, 2), (2, 5)], feature_dim=8, num_sources=3, hidden_dim=16)
        >>> [tuple(p.shape) for p in masks.band_parameters(0)]
        [(8,), (8,), (16, 8), (16,), (24, 16), (24,)]
        """
        group, position = self.groups.locate(band)
        return self.layers[group].band_parameters(position)


class BandSplitSeparator(Separator):
    """The band-split separators' skeleton: STFT, band split, band-sequence blocks, masks, iSTFT.

    STFT (periodic Hann window of ``n_fft`` samples, hop ``hop_length``, zero-padded centred
    frames) -> :class:`BandSplit` -> ``blocks`` (each ``[B, T', K, N] -> [B, T', K, N]``) ->
    :class:`MaskEstimator` -> complex masks times the mixture spectrum -> iSTFT. BSRNN and
    BS-RoFormer differ only in their blocks (and in the norm of the band split and the masks),
    so a new band-split model subclasses this and passes its blocks. The padded length is a
    multiple of ``hop_length`` (the stride), so the iSTFT returns exactly that length, and a
    stride gives two frames (the contract's minimum).

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs.
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length.
    hop_length : int
        Hop in samples (the stride), at most ``n_fft // 2`` so the window overlap-adds safely.
    band_plan : str or sequence of (float, float)
        A preset name from :data:`BAND_PLANS` or bands in Hz.
    feature_dim : int
        ``N``, features per band.
    mask_hidden_dim : int
        Hidden units of the per-band mask MLPs.
    blocks : callable
        Called once, with no argument, after the band split is built: returns the blocks (an
        iterable of modules), applied in turn to the band features. A callable rather than the
        modules keeps the order in which parameters are created (and initialised from the seed)
        the order of the model: band split, blocks, masks.
    norm : str
        Norm of the band split and the mask MLPs: ``"layer"`` or ``"rms"``.

    Example
    -------
    >>> model = BandSplitSeparator(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...                            band_plan="speech", feature_dim=8, mask_hidden_dim=16,
    ...                            blocks=lambda: [torch.nn.Identity()])
    >>> model(torch.randn(3, 1001)).shape
    torch.Size([3, 1001, 2])
    >>> model.num_bands
    30
    """

    def __init__(
        self,
        num_sources: int,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        band_plan: str | Sequence[Sequence[float]],
        feature_dim: int,
        mask_hidden_dim: int,
        blocks: Callable[[], Iterable[nn.Module]],
        norm: str = "layer",
    ) -> None:
        super().__init__(num_sources=num_sources, sample_rate=sample_rate, stride=hop_length)
        check_positive_int(feature_dim=feature_dim, mask_hidden_dim=mask_hidden_dim)
        if norm not in BAND_NORMS:
            raise ValueError(f"unknown band norm {norm!r}; use one of {BAND_NORMS}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.bins = band_bins(band_plan, sample_rate, n_fft)
        self.num_bands = len(self.bins)
        self.encoder = STFTEncoder(n_fft, hop_length)  # Hann, centred, zero-padded frames
        self.decoder = ISTFTDecoder(n_fft, hop_length)
        self.band_split = BandSplit(self.bins, feature_dim, norm)
        self.blocks = nn.ModuleList(blocks())
        self.mask_estimator = MaskEstimator(self.bins, feature_dim, num_sources, mask_hidden_dim,
                                            norm)

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        """Separates a mixture whose length is a multiple of ``hop_length``.

        Arguments
        ---------
        mix : torch.Tensor
            ``[B, L]`` mixture, ``L % hop_length == 0``.

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` estimated sources.
        """
        spec = self.encoder(mix)  # [B, F, T'] complex, T' = L / hop + 1
        z = self.band_split(spec)  # [B, T', K, N]
        for block in self.blocks:
            z = block(z)  # [B, T', K, N]
        masks = self.mask_estimator(z).float()  # [B, S, F, T', 2]
        return self.apply_masks(spec, masks)  # [B, L, S]

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Multiplies the mixture spectrum by complex masks and inverts each source.

        Arguments
        ---------
        spec : torch.Tensor
            ``[B, F, T']`` complex mixture spectrogram (``self.encoder(mix)``).
        masks : torch.Tensor
            ``[B, S, F, T', 2]`` real and imaginary masks (float32).

        Returns
        -------
        torch.Tensor
            ``[B, L, S]`` waveforms, ``L = (T' - 1) * hop_length``.

        Example
        -------
        >>> model = BandSplitSeparator(num_sources=1, sample_rate=8000, n_fft=64,
        ...                            hop_length=16, band_plan=[(0, 4000)], feature_dim=4,
        ...                            mask_hidden_dim=4, blocks=lambda: [])
        >>> mix = torch.randn(2, 160)
        >>> spec = model.encoder(mix)
        >>> ones = torch.stack([torch.ones(spec.shape), torch.zeros(spec.shape)], -1)
        >>> torch.allclose(model.apply_masks(spec, ones.unsqueeze(1))[..., 0], mix, atol=1e-5)
        True
        """
        return apply_complex_masks(self.decoder, spec, masks)  # [B, L, S]


class BSRNN(BandSplitSeparator):
    """Band-split RNN separator: mixture ``[B, T]`` -> ``num_sources`` sources ``[B, T, S]``.

    A :class:`BandSplitSeparator` (STFT, LayerNorm band split, blocks, LayerNorm mask MLPs,
    iSTFT) whose blocks are ``num_blocks`` x :class:`BandSequenceBlock` (a residual BLSTM across
    time, then one across bands).

    Arguments
    ---------
    num_sources : int
        ``S``, the number of outputs (4 for GASS).
    sample_rate : int
        Sample rate in Hz; with ``n_fft`` it turns the band plan into bins.
    n_fft : int
        FFT size and window length.
    hop_length : int
        Hop in samples (the stride), at most ``n_fft // 2`` so the window overlap-adds safely.
    band_plan : str or sequence of (float, float)
        A preset name (``"music"``, ``"speech"``, ``"gass"``, ``"roformer"``) or bands in Hz.
    feature_dim : int
        ``N``, features per band.
    hidden_dim : int
        BLSTM hidden units per direction (the paper uses ``2 N``).
    num_blocks : int
        Band-and-sequence blocks (each a time and a band BLSTM).
    mask_hidden_dim : int or None
        Hidden units of the per-band mask MLPs; ``None`` means ``4 * feature_dim`` (the paper).

    Example
    -------
    >>> model = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
    ...               band_plan="speech", feature_dim=8, hidden_dim=8, num_blocks=1)
    >>> model(torch.randn(3, 1001)).shape
    torch.Size([3, 1001, 2])
    >>> model.num_bands
    30
    """

    def __init__(
        self,
        num_sources: int = 4,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 128,
        band_plan: str | Sequence[Sequence[float]] = "gass",
        feature_dim: int = 128,
        hidden_dim: int = 256,
        num_blocks: int = 10,
        mask_hidden_dim: int | None = None,
    ) -> None:
        check_positive_int(feature_dim=feature_dim, hidden_dim=hidden_dim, num_blocks=num_blocks)
        super().__init__(
            num_sources=num_sources, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
            band_plan=band_plan, feature_dim=feature_dim,
            mask_hidden_dim=4 * feature_dim if mask_hidden_dim is None else mask_hidden_dim,
            blocks=lambda: (BandSequenceBlock(feature_dim, hidden_dim) for _ in range(num_blocks)),
            norm="layer",
        )


def _check_bins(bins: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Validates contiguous, non-empty bin ranges from bin 0 and returns them as int pairs."""
    ranges = [(int(start), int(end)) for start, end in bins]
    if not ranges or ranges[0][0] != 0:
        raise ValueError(f"expected bin ranges starting at bin 0, got {bins!r}")
    for i, (start, end) in enumerate(ranges):
        if end <= start or (i and start != ranges[i - 1][1]):
            raise ValueError(f"expected contiguous non-empty bin ranges, got {bins!r} (see "
                             "band_bins)")
    return ranges
