"""Changing the rate a separator runs at: lengths in samples kept in ms, kernels resampled.

A separator pre-trained at one rate and fine-tuned at another (``finetune_rate: benchmark`` in
the benchmark recipes) keeps what its constructor defines in Hz (band plans) but not what it
counts in samples (STFT windows and hops, TDANet-Wav's encoder kernel and stride). This converts
those arguments to keep their duration (:func:`convert_sample_lengths`), resamples learned
convolution kernels to their new length (:func:`resample_kernel`) and says, for a fine-tuning
run, which rate and outputs the model gets (:func:`finetuning_description`).
:mod:`gass_modules.training.transfer` uses them to load the weights.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch

from gass_modules.lobes.base import SeparatorDescription

FINETUNE_RATES = ("model", "benchmark")
# constructor arguments of the gass separators that count samples (the rest are in Hz, channels,
# layers or names): the windows and hops of the STFT models, TDANet-Wav's encoder kernel/stride
SAMPLE_LENGTH_ARGUMENTS = ("n_fft", "win_length", "hop_length", "enc_kernel_size", "enc_stride")


def resample_kernel(kernel: torch.Tensor, taps: int) -> torch.Tensor:
    """A learned 1-D convolution kernel stretched to ``taps`` samples over the same duration.

    A filter learned at rate ``r0`` with ``k0`` taps spans ``k0 / r0`` seconds; at rate ``r1``
    the same duration holds ``k1 = k0 r1 / r0`` taps. The kernel is linearly interpolated
    (torch's ``interpolate``, ends aligned) and scaled by ``k0 / k1``, so that its response to a
    slowly varying input (the sum of its taps times the input) stays the same.

    Arguments
    ---------
    kernel : torch.Tensor
        ``[C_out, C_in, k0]`` weights (``ConvTranspose1d``: ``[C_in, C_out, k0]``).
    taps : int
        The new length ``k1``.

    Returns
    -------
    torch.Tensor
        ``[C_out, C_in, taps]`` float32 weights.

    Example
    -------
    >>> k = torch.ones(2, 1, 4)
    >>> resample_kernel(k, 8).sum(-1)  # the same DC gain
    tensor([[4.],
            [4.]])
    """
    if kernel.dim() != 3 or not isinstance(taps, int) or taps < 1:
        raise ValueError(f"expected a [C_out, C_in, k] kernel and a positive int length, got "
                         f"{tuple(kernel.shape)} and {taps!r}")
    k0 = kernel.shape[-1]
    if k0 == taps:
        return kernel.float().clone()
    flat = kernel.float().reshape(-1, 1, k0)  # [C_out * C_in, 1, k0]
    if k0 == 1:
        out = flat.expand(-1, -1, taps)
    else:
        out = torch.nn.functional.interpolate(flat, size=taps, mode="linear", align_corners=True)
    return (out * (k0 / taps)).reshape(*kernel.shape[:2], taps)


def convert_sample_lengths(arguments: Mapping, from_rate: int, to_rate: int
                           ) -> tuple[dict, dict[str, str]]:
    """Constructor arguments counting samples, converted to keep their duration at another rate.

    The arguments of :data:`SAMPLE_LENGTH_ARGUMENTS` present in ``arguments`` are scaled by
    ``to_rate / from_rate`` and rounded to what the separators accept: an even ``n_fft`` (and
    ``win_length``), a hop of at most ``n_fft // 2``, an encoder stride of at least 1 and a
    kernel that exceeds it by an even number of samples. Band plans are in Hz, so they need no
    conversion (their STFT bins follow ``n_fft``).

    Arguments
    ---------
    arguments : Mapping
        A separator's constructor arguments (``SeparatorDescription.arguments``).
    from_rate, to_rate : int
        The rate the arguments are for, and the new one (Hz).

    Returns
    -------
    tuple
        ``(arguments, changes)``: the converted copy, and for each changed name the old and new
        values with their duration.

    Example
    -------
    >>> args, changes = convert_sample_lengths({"n_fft": 512, "hop_length": 128, "depth": 4},
    ...                                        16000, 44100)
    >>> args
    {'n_fft': 1412, 'hop_length': 353, 'depth': 4}
    >>> changes["n_fft"]
    '512 -> 1412 samples (32.0 ms)'
    """
    if not (isinstance(from_rate, int) and isinstance(to_rate, int)
            and from_rate > 0 and to_rate > 0):
        raise ValueError(f"rates must be positive ints (Hz), got {from_rate!r} and {to_rate!r}")
    ratio = to_rate / from_rate
    out = dict(arguments)
    if "n_fft" in out:
        out["n_fft"] = max(2, 2 * round(out["n_fft"] * ratio / 2))
    if out.get("win_length") is not None:
        out["win_length"] = min(out.get("n_fft", 1 << 30),
                                max(2, 2 * round(out["win_length"] * ratio / 2)))
    if "hop_length" in out:
        half = out["n_fft"] // 2 if "n_fft" in out else 1 << 30
        out["hop_length"] = min(half, max(1, round(out["hop_length"] * ratio)))
    if "enc_stride" in out:
        stride = max(1, round(out["enc_stride"] * ratio))
        extra = arguments.get("enc_kernel_size", arguments["enc_stride"]) - arguments["enc_stride"]
        out["enc_stride"] = stride
        if "enc_kernel_size" in out:
            out["enc_kernel_size"] = stride + 2 * round(extra * ratio / 2)
    changes = {k: f"{arguments[k]} -> {out[k]} samples "
                  f"({1000.0 * arguments[k] / from_rate:.1f} ms)"
               for k in SAMPLE_LENGTH_ARGUMENTS if k in out and out[k] != arguments[k]}
    return out, changes


def finetuning_description(description: SeparatorDescription, source_rate: int,
                           source_num_sources: int, benchmark_rate: int,
                           benchmark_sources: int, mode: str = "model"
                           ) -> tuple[SeparatorDescription, dict[str, str]]:
    """The separator to fine-tune: the recipe's card at the rate and outputs ``mode`` asks for.

    * ``model``: the pre-trained model's rate, so nothing changes under the weights (the recipe
      resamples the benchmark audio to it, and the outputs back for scoring);
    * ``benchmark``: the benchmark's rate, with windows, hops and kernels converted to keep
      their duration (:func:`convert_sample_lengths`).

    Either way the model keeps the pre-trained number of outputs (the surplus ones learn
    silence, as GASS's 4 outputs do on 2-source mixtures), unless the benchmark has more stems.

    Arguments
    ---------
    description : SeparatorDescription
        The recipe's separator as built from its card (at the benchmark's rate and stems).
    source_rate, source_num_sources : int
        The pre-trained model's rate and outputs.
    benchmark_rate, benchmark_sources : int
        The benchmark's rate and number of stems.
    mode : str
        ``model`` or ``benchmark`` (``finetune_rate`` in the recipes).

    Returns
    -------
    tuple
        ``(description, settings)``: what to build, and each setting that differs from the
        recipe's card with its reason.

    Example
    -------
    >>> d = SeparatorDescription("x.Sep", {"sample_rate": 44100, "num_sources": 3,
    ...                                    "n_fft": 512, "hop_length": 128}, 44100, 3)
    >>> new, why = finetuning_description(d, 16000, 4, 44100, 3, "model")
    >>> new.sample_rate, new.num_sources, new.arguments["n_fft"], sorted(why)
    (16000, 4, 512, ['num_sources', 'sample_rate'])
    >>> finetuning_description(d, 16000, 4, 44100, 3, "benchmark")[0].arguments["n_fft"]
    1412
    """
    if mode not in FINETUNE_RATES:
        raise ValueError(f"finetune_rate must be one of {FINETUNE_RATES} (model: the pre-trained "
                         f"model's rate, benchmark audio resampled; benchmark: the benchmark's "
                         f"rate, windows and kernels converted), got {mode!r}")
    args = dict(description.arguments)
    if "sample_rate" not in args or "num_sources" not in args:
        raise ValueError(f"{description.class_path} does not take sample_rate and num_sources "
                         "arguments, so it cannot be rebuilt for fine-tuning")
    settings: dict[str, str] = {}
    outputs = max(int(source_num_sources), int(benchmark_sources))
    if outputs != args["num_sources"]:
        settings["num_sources"] = (
            f"{args['num_sources']} -> {outputs}: the pre-trained model's outputs "
            + ("(the surplus ones learn silence), so its output layer transfers"
               if outputs == source_num_sources else
               f"are fewer than the benchmark's {benchmark_sources} stems"))
    args["num_sources"] = outputs
    rate = int(source_rate) if mode == "model" else int(benchmark_rate)
    if mode == "benchmark" and source_rate != benchmark_rate:
        # the card's lengths in samples are those of the rate it was pre-trained at
        args, changes = convert_sample_lengths(args, int(source_rate), rate)
        settings.update({k: f"{v} at {source_rate} Hz, the same duration at {rate} Hz"
                         for k, v in changes.items()})
    if rate != args["sample_rate"]:
        settings["sample_rate"] = (
            f"{args['sample_rate']} -> {rate} Hz: "
            + ("the pre-trained model's rate (benchmark audio resampled in, outputs out)"
               if mode == "model" else "the benchmark's rate"))
    args["sample_rate"] = rate
    return replace(description, arguments=args, sample_rate=rate, num_sources=outputs), settings


__all__ = ["FINETUNE_RATES", "SAMPLE_LENGTH_ARGUMENTS", "convert_sample_lengths",
           "finetuning_description", "resample_kernel"]
