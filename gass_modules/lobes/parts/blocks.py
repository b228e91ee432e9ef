"""Building blocks shared by the separators: conv + norm, front ends and back ends.

Front ends map a waveform ``[B, L]`` to features and back ends map features back to a waveform:

* :class:`ConvEncoder` / :class:`ConvDecoder`: a learned 1-D conv filterbank (Conv-TasNet style)
  framed so that ``L = stride * F`` samples give exactly ``F`` frames and back, which is what lets
  multi-scale maskers see a frame count that is a multiple of their down-sampling factor;
* :class:`STFTEncoder` / :class:`ISTFTDecoder`: torchaudio's ``Spectrogram(power=None)`` and
  ``InverseSpectrogram`` giving complex spectra ``[B, F, N]`` (``F = n_fft // 2 + 1`` bins,
  ``N = L / hop + 1`` frames for ``L`` a multiple of ``hop``), with :func:`complex_to_channels`
  / :func:`channels_to_complex` for real+imag channel features ``[B, 2F, N]``.

All of them are written so that ``torch.export`` can trace them with a symbolic length (no Python
branch on a size, no ``length=`` argument to ``istft``, which specialises it).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from gass_modules.lobes.base import check_positive_int


def _check_dims(x: torch.Tensor, dims: tuple[int, ...], what: str) -> None:
    """Raises a ``ValueError`` naming ``what`` unless ``x.dim()`` is one of ``dims``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {what} as a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"expected {what}, got shape {tuple(x.shape)}")


def global_layer_norm(channels: int, eps: float = 1e-8) -> nn.GroupNorm:
    """Global layer normalisation (gLN, Luo & Mesgarani 2019) over ``[B, C, T]`` features.

    gLN normalises each item over all channels and frames, then applies a per-channel gain and
    bias: exactly ``nn.GroupNorm`` with one group, which is what this returns.

    Arguments
    ---------
    channels : int
        Number of channels ``C``.
    eps : float
        Added to the variance.

    Returns
    -------
    torch.nn.GroupNorm
        The normalisation layer.

    Example
    -------
    >>> norm = global_layer_norm(4)
    >>> y = norm(torch.randn(2, 4, 10) * 3 + 1)
    >>> bool(abs(y[0].mean()) < 1e-5), bool(abs(y[0].std(unbiased=False) - 1) < 1e-3)
    (True, True)
    """
    check_positive_int(channels=channels)
    return nn.GroupNorm(1, channels, eps=eps)


def conv1d_frames_last(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Applies an ``nn.Conv1d`` to frames-last features ``[B, T, C]`` without moving memory.

    The same result as ``conv(x.transpose(1, 2)).transpose(1, 2)``, computed as: a matrix product
    for pointwise convolutions, a per-channel product for 1-tap depthwise ones, and otherwise a
    ``conv2d`` on the channels-last view ``[B, C, 1, T]`` of the same memory (oneDNN's
    channels-last depthwise kernels are about 3x faster on CPU than its channels-first 1-D ones,
    and PyTorch's grouped path for 1-tap depthwise convolutions is about 25x slower than the
    product; measured with torch 2.11, one thread).

    Arguments
    ---------
    conv : torch.nn.Conv1d
        The convolution (zero padding, no dilation).
    x : torch.Tensor
        ``[B, T, C_in]`` features.

    Returns
    -------
    torch.Tensor
        ``[B, T', C_out]`` features, ``T'`` as ``conv`` gives.

    Example
    -------
    >>> conv = torch.nn.Conv1d(4, 4, 5, padding=2, groups=4)
    >>> x = torch.randn(2, 9, 4)
    >>> torch.allclose(conv1d_frames_last(conv, x), conv(x.transpose(1, 2)).transpose(1, 2),
    ...                atol=1e-6)
    True
    """
    if conv.padding_mode != "zeros" or conv.dilation != (1,) or isinstance(conv.padding, str):
        raise ValueError(f"conv1d_frames_last supports zero padding given as an int and no "
                         f"dilation, got padding={conv.padding!r}, padding_mode="
                         f"{conv.padding_mode!r}, dilation={conv.dilation}")
    _check_dims(x, (3,), "frames-last features [B, T, C]")
    pointwise = conv.kernel_size == (1,) and conv.stride == (1,) and conv.padding == (0,)
    if pointwise and conv.groups == 1:
        return nn.functional.linear(x, conv.weight[:, :, 0], conv.bias)  # [B, T, C_out]
    if pointwise and conv.groups == conv.in_channels == conv.out_channels:
        y = x * conv.weight[:, 0, 0].to(x.dtype)  # [B, T, C]
        return y if conv.bias is None else y + conv.bias.to(x.dtype)
    y = nn.functional.conv2d(x.transpose(1, 2).unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
                             (1, conv.stride[0]), (0, conv.padding[0]), 1, conv.groups)
    return y.squeeze(2).transpose(1, 2)  # [B, T', C_out]


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` for channels-first (``[B, C, T]``) or frames-last (``[B, T, C]``) features.

    Same parameters and state dict as ``nn.Conv1d``. With ``frames_last=True`` it applies
    :func:`conv1d_frames_last`. Channels-first, a 1-tap depthwise convolution
    (``y[c] = w[c] x[c] + b[c]``) is computed as that product: PyTorch's CPU kernel for it is
    about 25x slower (6.4 ms against 0.24 ms for a 5-tap one on ``[3, 1024, 32]``).

    Arguments
    ---------
    *args
        As for ``torch.nn.Conv1d``.
    frames_last : bool
        Inputs and outputs are ``[B, T, C]``.
    **kwargs
        As for ``torch.nn.Conv1d``.

    Example
    -------
    >>> conv = Conv1d(4, 4, 1, groups=4)
    >>> x = torch.randn(2, 4, 9)
    >>> torch.allclose(conv(x), torch.nn.functional.conv1d(x, conv.weight, conv.bias, groups=4))
    True
    >>> frames = Conv1d(4, 6, 3, padding=1, frames_last=True)
    >>> frames(x.transpose(1, 2)).shape
    torch.Size([2, 9, 6])
    """

    def __init__(self, *args, frames_last: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames_last = frames_last
        self.channel_affine = (self.kernel_size == (1,) and self.groups == self.in_channels
                               == self.out_channels and self.stride == (1,)
                               and self.padding == (0,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the convolution.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C_in, T]``, or ``[B, T, C_in]`` when ``frames_last``.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, T']``, or ``[B, T', C_out]`` when ``frames_last``.
        """
        if self.frames_last:  # constants of the module, not branches on shapes
            return conv1d_frames_last(self, x)
        if not self.channel_affine:
            return super().forward(x)
        return conv1d_frames_last(self, x.transpose(1, 2)).transpose(1, 2)  # the product path


def group_norm_frames_last(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """Applies an ``nn.GroupNorm`` (e.g. gLN) to frames-last features ``[B, T, C]``.

    The same result as ``norm(x.transpose(1, 2)).transpose(1, 2)``, computed on the channels-last
    view ``[B, C, 1, T]`` of the same memory (no copy).

    Arguments
    ---------
    norm : torch.nn.GroupNorm
        The normalisation (its groups, affine parameters and eps are used).
    x : torch.Tensor
        ``[B, T, C]`` features.

    Returns
    -------
    torch.Tensor
        ``[B, T, C]`` normalised features.

    Example
    -------
    >>> norm = global_layer_norm(4)
    >>> x = torch.randn(2, 7, 4)
    >>> torch.allclose(group_norm_frames_last(norm, x), norm(x.transpose(1, 2)).transpose(1, 2),
    ...                atol=1e-6)
    True
    """
    _check_dims(x, (3,), "frames-last features [B, T, C]")
    y = nn.functional.group_norm(x.transpose(1, 2).unsqueeze(2), norm.num_groups, norm.weight,
                                 norm.bias, norm.eps)  # [B, C, 1, T]
    return y.squeeze(2).transpose(1, 2)


class ConvNorm(nn.Module):
    """1-D convolution with "same" padding, then gLN, then an optional PReLU.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int
        Odd kernel size (the padding ``(k - 1) // 2`` keeps the length at stride 1).
    stride : int
        Stride; with an odd kernel the output has ``ceil(T / stride)`` frames.
    groups : int
        Convolution groups (``groups = in_channels`` for a depthwise conv).
    bias : bool
        Whether the convolution has a bias.
    activation : bool
        Append a PReLU.
    frames_last : bool
        Inputs and outputs are ``[B, T, C]`` instead of ``[B, C, T]`` (same parameters).

    Example
    -------
    >>> layer = ConvNorm(8, 8, kernel_size=5, stride=2, groups=8)
    >>> layer(torch.randn(2, 8, 32)).shape
    torch.Size([2, 8, 16])
    >>> ConvNorm(8, 8, kernel_size=5, stride=2, groups=8, frames_last=True)(
    ...     torch.randn(2, 32, 8)).shape
    torch.Size([2, 16, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True, activation: bool = False,
                 frames_last: bool = False) -> None:
        super().__init__()
        check_positive_int(in_channels=in_channels, out_channels=out_channels,
                           kernel_size=kernel_size, stride=stride, groups=groups)
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvNorm needs an odd kernel_size for 'same' padding, got "
                             f"{kernel_size}")
        self.conv = Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                           padding=(kernel_size - 1) // 2, groups=groups, bias=bias,
                           frames_last=frames_last)
        self.norm = global_layer_norm(out_channels)
        self.act = nn.PReLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies conv, gLN and the activation.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C_in, T]`` features (``[B, T, C_in]`` when ``frames_last``).

        Returns
        -------
        torch.Tensor
            ``[B, C_out, ceil(T / stride)]`` features (``[B, ceil(T / stride), C_out]``).
        """
        y = self.conv(x)
        y = group_norm_frames_last(self.norm, y) if self.conv.frames_last else self.norm(y)
        return self.act(y)


def pad_to_multiple(x: torch.Tensor, multiple: int, dim: int = -1) -> torch.Tensor:
    """Zero-pads dimension ``dim`` at its end to the next multiple of ``multiple``.

    Arguments
    ---------
    x : torch.Tensor
        Tensor of any shape.
    multiple : int
        The padded size is the smallest multiple of it that is ``>= x.shape[dim]``.
    dim : int
        The dimension to pad.

    Returns
    -------
    torch.Tensor
        ``x`` with ``x.shape[dim] + (-x.shape[dim]) % multiple`` entries along ``dim``.

    Example
    -------
    >>> pad_to_multiple(torch.ones(2, 5), 4)
    tensor([[1., 1., 1., 1., 1., 0., 0., 0.],
            [1., 1., 1., 1., 1., 0., 0., 0.]])
    >>> pad_to_multiple(torch.ones(1, 3, 2), 2, dim=1).shape
    torch.Size([1, 4, 2])
    """
    check_positive_int(multiple=multiple)
    dim = dim % x.dim()
    # The amount is an expression of the (possibly symbolic) size, not a branch on it.
    amount = (-x.shape[dim]) % multiple
    return nn.functional.pad(x, (0, 0) * (x.dim() - 1 - dim) + (0, amount))


class ConvEncoder(nn.Module):
    """Learned analysis filterbank: ``Conv1d(1, N, kernel_size, stride)`` framed exactly.

    The input is zero-padded by ``(kernel_size - stride) / 2`` samples on each side, so a
    waveform of ``L = stride * F`` samples gives exactly ``F`` frames, and :class:`ConvDecoder`
    with the same sizes maps them back to ``L`` samples. (SpeechBrain's
    ``dual_path.Encoder`` gives ``2L / K - 1`` frames instead, and its ``Decoder`` squeezes away
    a batch of one, which ``torch.export`` cannot trace with a dynamic batch.)

    Arguments
    ---------
    out_channels : int
        Number of basis functions ``N``.
    kernel_size : int
        Window length ``K`` in samples.
    stride : int
        Hop in samples; ``kernel_size - stride`` must be even.
    activation : bool
        Apply a ReLU to the features (Conv-TasNet); TDANet uses the linear encoder.

    Example
    -------
    >>> enc = ConvEncoder(out_channels=64, kernel_size=16, stride=8)
    >>> enc(torch.randn(3, 80)).shape
    torch.Size([3, 64, 10])
    """

    def __init__(self, out_channels: int, kernel_size: int, stride: int,
                 activation: bool = False) -> None:
        super().__init__()
        check_positive_int(out_channels=out_channels, kernel_size=kernel_size, stride=stride)
        if stride > kernel_size or (kernel_size - stride) % 2:
            raise ValueError(f"ConvEncoder needs stride <= kernel_size and an even "
                             f"kernel_size - stride, got kernel_size={kernel_size}, "
                             f"stride={stride}; e.g. kernel_size=2*stride")
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv1d(1, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - stride) // 2, bias=False)
        self.act = nn.ReLU() if activation else nn.Identity()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Encodes a waveform batch.

        Arguments
        ---------
        wave : torch.Tensor
            ``[B, L]`` waveforms.

        Returns
        -------
        torch.Tensor
            ``[B, N, floor(L / stride)]`` features.
        """
        _check_dims(wave, (2,), "a waveform batch [B, L]")
        return self.act(self.conv(wave.unsqueeze(1)))  # [B, N, F]


class ConvDecoder(nn.Module):
    """Learned synthesis filterbank: ``ConvTranspose1d(N, 1, kernel_size, stride)``.

    The inverse framing of :class:`ConvEncoder` with the same sizes: ``F`` frames give
    ``stride * F`` samples. Leading dimensions (sources) are folded into the batch, so one
    decoder is shared by all sources.

    Arguments
    ---------
    in_channels : int
        Number of basis functions ``N``.
    kernel_size : int
        Window length ``K`` in samples.
    stride : int
        Hop in samples; ``kernel_size - stride`` must be even.

    Example
    -------
    >>> dec = ConvDecoder(in_channels=64, kernel_size=16, stride=8)
    >>> dec(torch.randn(3, 4, 64, 10)).shape
    torch.Size([3, 4, 80])
    """

    def __init__(self, in_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        check_positive_int(in_channels=in_channels, kernel_size=kernel_size, stride=stride)
        if stride > kernel_size or (kernel_size - stride) % 2:
            raise ValueError(f"ConvDecoder needs stride <= kernel_size and an even "
                             f"kernel_size - stride, got kernel_size={kernel_size}, "
                             f"stride={stride}; e.g. kernel_size=2*stride")
        self.in_channels = in_channels
        self.conv = nn.ConvTranspose1d(in_channels, 1, kernel_size, stride=stride,
                                       padding=(kernel_size - stride) // 2, bias=False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Decodes features to waveforms.

        Arguments
        ---------
        feats : torch.Tensor
            ``[..., N, F]`` features (e.g. ``[B, N, F]`` or ``[B, S, N, F]``).

        Returns
        -------
        torch.Tensor
            ``[..., stride * F]`` waveforms.
        """
        _check_dims(feats, (2, 3, 4, 5), "features [..., N, F]")
        if feats.shape[-2] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} feature channels in dim -2, got shape "
                             f"{tuple(feats.shape)}")
        lead = feats.shape[:-2]
        wave = self.conv(feats.reshape(-1, self.in_channels, feats.shape[-1]))  # [*, 1, L]
        return wave.reshape(*lead, wave.shape[-1])


class STFTEncoder(nn.Module):
    """Complex STFT front end (torchaudio ``Spectrogram(power=None)``, Hann window, centred).

    Frames are centred with zero padding, so ``L`` samples (a multiple of ``hop_length``) give
    ``L / hop_length + 1`` frames, and :class:`ISTFTDecoder` maps them back to exactly ``L``.

    Arguments
    ---------
    n_fft : int
        FFT size (= window length); ``F = n_fft // 2 + 1`` bins.
    hop_length : int
        Hop in samples; at most ``n_fft // 2`` so the Hann window overlap-adds without gaps.

    Example
    -------
    >>> stft = STFTEncoder(n_fft=64, hop_length=16)
    >>> spec = stft(torch.randn(2, 160))
    >>> spec.shape, spec.dtype
    (torch.Size([2, 33, 11]), torch.complex64)
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        check_positive_int(n_fft=n_fft, hop_length=hop_length)
        if hop_length > n_fft // 2:
            raise ValueError(f"hop_length must be <= n_fft // 2 for perfect reconstruction with a "
                             f"Hann window, got n_fft={n_fft}, hop_length={hop_length}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_bins = n_fft // 2 + 1
        self.stft = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, hop_length=hop_length, power=None, center=True, pad_mode="constant"
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Computes the complex spectrogram.

        Arguments
        ---------
        wave : torch.Tensor
            ``[B, L]`` float waveforms.

        Returns
        -------
        torch.Tensor
            ``[B, F, N]`` complex spectra.
        """
        _check_dims(wave, (2,), "a waveform batch [B, L]")
        # torchaudio's spectrogram is this torch.stft call behind a torch.jit.isinstance that
        # dynamo cannot trace (a graph break); its transform keeps the window and settings.
        t = self.stft
        return torch.stft(wave.float(), t.n_fft, t.hop_length, t.win_length, t.window, t.center,
                          t.pad_mode, False, t.onesided, return_complex=True)  # [B, F, N] f32


class ISTFTDecoder(nn.Module):
    """Inverse of :class:`STFTEncoder` (torchaudio ``InverseSpectrogram``, least squares OLA).

    ``N`` frames give ``hop_length * (N - 1)`` samples, i.e. exactly the ``L`` that
    :class:`STFTEncoder` encoded. No ``length`` is passed to ``istft``: it would make
    ``torch.export`` specialise the length.

    Arguments
    ---------
    n_fft : int
        FFT size used by the encoder.
    hop_length : int
        Hop used by the encoder.

    Example
    -------
    >>> stft, istft = STFTEncoder(64, 16), ISTFTDecoder(64, 16)
    >>> x = torch.randn(2, 160)
    >>> torch.allclose(istft(stft(x)), x, atol=1e-5)
    True
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        check_positive_int(n_fft=n_fft, hop_length=hop_length)
        if hop_length > n_fft // 2:
            raise ValueError(f"hop_length must be <= n_fft // 2 for perfect reconstruction with a "
                             f"Hann window, got n_fft={n_fft}, hop_length={hop_length}")
        self.num_bins = n_fft // 2 + 1
        self.istft = torchaudio.transforms.InverseSpectrogram(
            n_fft=n_fft, hop_length=hop_length, center=True
        )

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Resynthesises waveforms.

        Arguments
        ---------
        spec : torch.Tensor
            ``[..., F, N]`` complex spectra.

        Returns
        -------
        torch.Tensor
            ``[..., hop_length * (N - 1)]`` waveforms.
        """
        _check_dims(spec, (2, 3, 4), "complex spectra [..., F, N]")
        if not spec.is_complex() or spec.shape[-2] != self.num_bins:
            raise ValueError(f"expected complex spectra with {self.num_bins} bins in dim -2, got "
                             f"{spec.dtype} of shape {tuple(spec.shape)}")
        t = self.istft  # torch.istft as torchaudio's inverse_spectrogram calls it (see above)
        wave = torch.istft(spec.reshape((-1,) + spec.shape[-2:]), t.n_fft, t.hop_length,
                           t.win_length, t.window, t.center, False, t.onesided)  # [*, L]
        return wave.reshape(spec.shape[:-2] + wave.shape[-1:])


def complex_to_channels(spec: torch.Tensor) -> torch.Tensor:
    """Stacks real and imaginary parts as channels: ``[B, F, N]`` complex -> ``[B, 2F, N]``.

    Arguments
    ---------
    spec : torch.Tensor
        ``[..., F, N]`` complex spectra.

    Returns
    -------
    torch.Tensor
        ``[..., 2F, N]`` real tensor, real parts first.

    Example
    -------
    >>> spec = torch.complex(torch.ones(1, 2, 3), -torch.ones(1, 2, 3))
    >>> complex_to_channels(spec)[0, :, 0]
    tensor([ 1.,  1., -1., -1.])
    """
    if not isinstance(spec, torch.Tensor) or not spec.is_complex() or spec.dim() < 2:
        raise ValueError(f"expected complex spectra [..., F, N], got "
                         f"{getattr(spec, 'dtype', type(spec))} "
                         f"{tuple(getattr(spec, 'shape', ()))}")
    return torch.cat([spec.real, spec.imag], dim=-2)


def channels_to_complex(feats: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`complex_to_channels`: ``[..., 2F, N]`` real -> ``[..., F, N]`` complex.

    Arguments
    ---------
    feats : torch.Tensor
        ``[..., 2F, N]`` real tensor, real parts first.

    Returns
    -------
    torch.Tensor
        ``[..., F, N]`` complex tensor (float32 or float64).

    Example
    -------
    >>> spec = torch.randn(2, 5, 7, dtype=torch.complex64)
    >>> torch.equal(channels_to_complex(complex_to_channels(spec)), spec)
    True
    """
    if not isinstance(feats, torch.Tensor) or feats.is_complex() or feats.dim() < 2 or (
            feats.shape[-2] % 2):
        raise ValueError(f"expected real features [..., 2F, N] with an even channel count, got "
                         f"{getattr(feats, 'dtype', type(feats))} "
                         f"{tuple(getattr(feats, 'shape', ()))}")
    real, imag = feats.chunk(2, dim=-2)
    if real.dtype not in (torch.float32, torch.float64):
        real, imag = real.float(), imag.float()  # e.g. bf16 under autocast: no complex bf16
    return torch.complex(real, imag)


def apply_complex_masks(decoder: ISTFTDecoder, spec: torch.Tensor,
                        masks: torch.Tensor) -> torch.Tensor:
    """Multiplies a mixture spectrum by one complex mask per source and inverts each source.

    The back end the band-split separators (BSRNN, TIGER) share: ``ŝ_s = iSTFT(M_s * X)``.

    Arguments
    ---------
    decoder : ISTFTDecoder
        The inverse of the encoder that gave ``spec``.
    spec : torch.Tensor
        ``[B, F, N]`` complex mixture spectrogram.
    masks : torch.Tensor
        ``[B, S, F, N, 2]`` real and imaginary parts of the masks (float32 or float64).

    Returns
    -------
    torch.Tensor
        ``[B, L, S]`` waveforms, ``L = hop_length * (N - 1)``.

    Example
    -------
    >>> stft, istft = STFTEncoder(64, 16), ISTFTDecoder(64, 16)
    >>> mix = torch.randn(2, 160)
    >>> spec = stft(mix)
    >>> half = torch.stack([torch.full(spec.shape, 0.5), torch.zeros(spec.shape)], -1)
    >>> out = apply_complex_masks(istft, spec, torch.stack([half, half], 1))
    >>> out.shape, torch.allclose(out.sum(-1), mix, atol=1e-5)
    (torch.Size([2, 160, 2]), True)
    """
    if masks.dim() != 5 or masks.shape[-1] != 2 or masks.shape[0] != spec.shape[0] or (
            masks.shape[2:4] != spec.shape[1:]):
        raise ValueError(f"expected masks [B, S, F, N, 2] for a spectrogram [B, F, N] = "
                         f"{tuple(spec.shape)}, got {tuple(masks.shape)}")
    estimates = torch.view_as_complex(masks.contiguous()) * spec.unsqueeze(1)  # [B, S, F, N]
    return decoder(estimates).transpose(1, 2)  # [B, S, L] -> [B, L, S]
