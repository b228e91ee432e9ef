"""Band plans in Hz and their STFT bin ranges: the band-split machinery's frequency layout.

Band plans are data: a sequence of ``(low_hz, high_hz)`` bands that starts at 0 Hz, leaves no gap
or overlap and reaches the Nyquist frequency (the last band may end at ``inf``, "the rest").
:func:`band_bins` maps a plan to STFT bin ranges for a sample rate and ``n_fft`` (a bin at
frequency ``f_j = j * sample_rate / n_fft`` belongs to the band with ``low <= f_j < high``; the
Nyquist bin to the last band), truncating the bands above Nyquist. Presets (:data:`BAND_PLANS`):

* ``"music"``: the plan of Luo & Yu's BSRNN paper. 100 Hz bands up to 1 kHz, 250 Hz up to 4 kHz,
  500 Hz up to 8 kHz, 1 kHz up to 16 kHz, 2 kHz up to 20 kHz, the rest one band (41 bands at
  44.1 kHz).
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

Every band-split model (:mod:`gass_modules.lobes.bsrnn`, :mod:`gass_modules.lobes.bs_roformer`,
:mod:`gass_modules.lobes.tiger` and the layers of :mod:`gass_modules.lobes.parts.band_layers`) takes
its
bands from here.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from gass_modules.lobes.base import check_positive_int

Band = tuple[float, float]


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
