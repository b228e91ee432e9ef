"""Causal parts and streaming state for the separators (issue #28).

A causal separator's output at sample ``n`` depends on the input up to ``n + lookahead`` only
(``lookahead``: the samples the analysis window reaches ahead, the model itself sees no future
frame). The parts here are what the causal variants add to the existing lobes, as constructor
options of those lobes (``causal=True``), so a non-causal model is built and runs exactly as
before:

* :class:`ResidualLSTM`: ``x + FC(LSTM(LN(x)))`` with a unidirectional LSTM, the causal
  counterpart of :class:`~gass_modules.lobes.blstm.ResidualBLSTM` (BSRNN's time layer), with a
  carried ``(h, c)`` state for streaming and a ``scan`` form that ``torch.export`` traces with a
  symbolic length;
* :class:`StreamingSTFT`: the centred, zero-padded STFT and least-squares iSTFT of
  :class:`~gass_modules.lobes.parts.blocks.STFTEncoder` /
  :class:`~gass_modules.lobes.parts.blocks.ISTFTDecoder`
  computed chunk by chunk: the frames and the output samples equal the whole signal's;
* :class:`CausalConv1d`, :class:`CausalConvNorm` (left-padded, any stride, frame-wise norm),
  :func:`causal_mean_pool`, :func:`lookback_mask`: TDANet's block causal (its streaming is
  :meth:`~gass_modules.lobes.parts.uconv.UConvBlock.forward_streaming`).

The ``state`` of a stream is a plain dict of tensors (and ints) that ``init_state`` returns and
``forward_streaming`` returns updated; nothing is stored on the module, so one model serves any
number of streams.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.parts.blocks import Conv1d


class ResidualLSTM(nn.Module):
    """``x + FC(LSTM(LayerNorm(x)))`` with a unidirectional LSTM: a causal sequence layer.

    The causal counterpart of :class:`~gass_modules.lobes.blstm.ResidualBLSTM`: the LayerNorm
    is over the features of each step (no statistics over time), and the LSTM runs forward only,
    so step ``t`` of the output depends on steps ``<= t``. :meth:`forward_streaming` carries the
    ``(h, c)`` state between chunks, giving what one call on the joined chunks gives.

    Arguments
    ---------
    feature_dim : int
        ``N``, the input and output features.
    hidden_dim : int
        LSTM hidden units.

    Example
    -------
    >>> layer = ResidualLSTM(8, 16).eval()
    >>> x = torch.randn(3, 10, 8)
    >>> state = layer.init_state(3)
    >>> a, state = layer.forward_streaming(x[:, :4], state)
    >>> b, state = layer.forward_streaming(x[:, 4:], state)
    >>> torch.allclose(torch.cat([a, b], 1), layer(x), atol=1e-6)
    True
    """

    def __init__(self, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        check_positive_int(feature_dim=feature_dim, hidden_dim=hidden_dim)
        self.hidden_dim = hidden_dim
        self.norm = nn.LayerNorm(feature_dim)
        self.lstm = nn.LSTM(feature_dim, hidden_dim, batch_first=True)
        self.fc = nn.Linear(hidden_dim, feature_dim)

    def init_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero ``(h, c)`` state of ``batch`` sequences (what :meth:`forward` starts from).

        Arguments
        ---------
        batch : int
            Number of sequences.

        Returns
        -------
        tuple of torch.Tensor
            ``h`` and ``c``, each ``[1, batch, hidden_dim]``.
        """
        weight = self.fc.weight
        zeros = weight.new_zeros(1, batch, self.hidden_dim)
        return zeros, zeros.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the layer to whole sequences (from the zero state).

        Arguments
        ---------
        x : torch.Tensor
            ``[M, L, N]`` sequences.

        Returns
        -------
        torch.Tensor
            ``[M, L, N]``.
        """
        y = self.norm(x)
        if torch.compiler.is_exporting():  # nn.LSTM pins the length under export (see blstm)
            hidden = _scan_lstm(y, self.lstm)  # [M, L, H]
        else:
            hidden = self.lstm(y)[0]  # [M, L, H]
        return x + self.fc(hidden)

    def forward_streaming(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Applies the layer to the next steps of the sequences, carrying the state.

        Arguments
        ---------
        x : torch.Tensor
            ``[M, L, N]`` the next ``L >= 0`` steps.
        state : tuple of torch.Tensor
            ``(h, c)`` from :meth:`init_state` or the previous call.

        Returns
        -------
        tuple
            ``[M, L, N]`` outputs and the new state.
        """
        if x.shape[1] == 0:
            return x, state
        hidden, state = self.lstm(self.norm(x), state)  # [M, L, H]
        return x + self.fc(hidden), state


def _scan_lstm(x: torch.Tensor, lstm: nn.LSTM) -> torch.Tensor:
    """``lstm(x)[0]`` for a one-layer, unidirectional, batch-first LSTM, as one ``scan``.

    nn.LSTM's equations (gate order i, f, g, o) from the zero state; used under ``torch.export``
    only, where ``nn.LSTM`` would pin the sequence length (pytorch/pytorch#115092).
    """
    w_hh = lstm.weight_hh_l0.t()  # [H, 4H]
    gates_in = nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
    gates_in = gates_in.transpose(0, 1).contiguous()  # [L, M, 4H]
    state = gates_in.new_zeros(gates_in.shape[1], lstm.hidden_size)  # [M, H]

    def step(carry, gates_t):  # gates_t [M, 4H]
        h, c = carry
        i, f, g, o = (gates_t + h @ w_hh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c), h.clone()

    _, hidden = scan(step, (state, state.clone()), gates_in, dim=0)  # [L, M, H]
    return hidden.transpose(0, 1)  # [M, L, H]


class StreamingSTFT:
    """The centred STFT and least-squares iSTFT of the STFT separators, chunk by chunk.

    :class:`~gass_modules.lobes.parts.blocks.STFTEncoder` pads the signal with ``n_fft // 2`` zeros
    on
    each side and takes frame ``t`` from padded samples ``[t * hop, t * hop + n_fft)``;
    :class:`~gass_modules.lobes.parts.blocks.ISTFTDecoder` overlap-adds the windowed inverse frames,
    divides by the overlap-added squared window and drops the ``n_fft // 2`` padded samples at
    each end. Here the same happens as samples arrive: :meth:`analyse` returns every frame whose
    samples have all arrived, :meth:`synthesise` returns every output sample that no later frame
    touches. Frame ``t`` therefore needs the input up to sample ``t * hop + n_fft // 2 - 1`` and
    output sample ``n`` is final once frame ``floor((n + n_fft // 2) / hop)`` is in: a causal
    model on frames gives outputs that look less than ``n_fft`` samples ahead.

    Arguments
    ---------
    window : torch.Tensor
        ``[n_fft]`` the analysis (and synthesis) window of the encoder.
    hop_length : int
        The hop.

    Example
    -------
    >>> from gass_modules.lobes.parts.blocks import ISTFTDecoder, STFTEncoder
    >>> enc = STFTEncoder(64, 16)
    >>> stream = StreamingSTFT(enc.stft.window, 16)
    >>> x = torch.randn(2, 320)
    >>> state = stream.init_state(2)
    >>> frames = torch.cat([stream.analyse(c, state) for c in x.split(50, dim=1)], -1)
    >>> frames.shape[-1], enc(x).shape[-1]  # the last frames wait for samples after 320
    (19, 21)
    >>> torch.allclose(frames, enc(x)[..., :19], atol=1e-5)
    True
    >>> out = stream.synthesise(frames.unsqueeze(1), state)  # [B, 1, n]: n = 19 * 16 - 32
    >>> out.shape[-1], torch.allclose(out[:, 0], ISTFTDecoder(64, 16)(enc(x))[:, :272], atol=1e-5)
    (272, True)
    """

    def __init__(self, window: torch.Tensor, hop_length: int) -> None:
        check_positive_int(hop_length=hop_length)
        self.window = window
        self.n_fft = window.shape[0]
        self.hop = hop_length
        self.pad = self.n_fft // 2
        # the overlap-added squared window: partial over the first n_fft - hop padded samples
        # (no frame before t = 0), periodic with period hop after them
        square = window.double().square()
        envelope = torch.zeros(self.n_fft + self.hop, dtype=torch.float64)
        for start in range(0, self.n_fft + self.hop, self.hop):
            stop = min(start + self.n_fft, envelope.shape[0])
            envelope[start:stop] += square[:stop - start]
        self.envelope = envelope  # valid on [0, n_fft + hop); periodic from n_fft - hop on

    def init_state(self, batch: int, device: torch.device | None = None) -> dict:
        """A new stream's state (the left padding of the centred STFT already in).

        Arguments
        ---------
        batch : int
            Number of signals.
        device : torch.device, optional
            Where the state lives (the window's device by default).

        Returns
        -------
        dict
            ``input`` (samples not yet framed), ``tail`` (the overlap-add tail), ``position``
            (padded position of the next output sample).
        """
        device = self.window.device if device is None else device
        return {"input": torch.zeros(batch, self.pad, device=device), "tail": None,
                "position": 0}

    def analyse(self, chunk: torch.Tensor, state: dict) -> torch.Tensor:
        """Appends ``chunk`` to the stream and returns the frames it completes.

        Arguments
        ---------
        chunk : torch.Tensor
            ``[B, n]`` the next samples.
        state : dict
            From :meth:`init_state`; updated in place.

        Returns
        -------
        torch.Tensor
            ``[B, F, k]`` complex spectra of the ``k >= 0`` completed frames.
        """
        buffer = torch.cat([state["input"], chunk.to(state["input"].dtype)], dim=1)  # [B, m]
        frames = (buffer.shape[1] - self.n_fft) // self.hop + 1 if (
            buffer.shape[1] >= self.n_fft) else 0
        if frames == 0:
            state["input"] = buffer
            return torch.zeros(buffer.shape[0], self.n_fft // 2 + 1, 0, dtype=torch.complex64,
                               device=buffer.device)
        used = (frames - 1) * self.hop + self.n_fft
        spec = torch.stft(buffer[:, :used], self.n_fft, self.hop, window=self.window,
                          center=False, return_complex=True)  # [B, F, frames]
        state["input"] = buffer[:, frames * self.hop:]
        return spec

    def synthesise(self, spec: torch.Tensor, state: dict) -> torch.Tensor:
        """Overlap-adds the next frames and returns the output samples they finish.

        Arguments
        ---------
        spec : torch.Tensor
            ``[B, S, F, k]`` complex spectra of the next ``k >= 0`` frames (of each source).
        state : dict
            From :meth:`init_state`; updated in place.

        Returns
        -------
        torch.Tensor
            ``[B, S, k * hop - d]`` final output samples (``d``: those of the left padding,
            dropped while the stream starts).
        """
        batch, sources, _, frames = spec.shape
        if state["tail"] is None:
            state["tail"] = torch.zeros(batch, sources, self.n_fft - self.hop,
                                        device=spec.device)
        if frames == 0:
            return state["tail"].new_zeros(batch, sources, 0)
        wave = torch.fft.irfft(spec, n=self.n_fft, dim=-2) * self.window[:, None]  # [B,S,n,k]
        length = (frames - 1) * self.hop + self.n_fft
        ola = nn.functional.fold(wave.flatten(0, 1), (1, length), (1, self.n_fft),
                                 stride=(1, self.hop)).view(batch, sources, length)
        ola[..., :self.n_fft - self.hop] += state["tail"]
        done = frames * self.hop
        state["tail"] = ola[..., done:]
        out = ola[..., :done] / self._envelope(state["position"], done).to(ola.dtype)
        skip = max(0, self.pad - state["position"])  # the left padding is not output
        state["position"] += done
        return out[..., skip:]

    def separate(self, chunk: torch.Tensor, state: dict, num_sources: int,
                 estimate: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Analyses ``chunk``, maps the frames it completes to sources, synthesises them.

        The streaming step of an STFT separator: :meth:`analyse`, then ``estimate`` on the
        ``[B, F, k]`` frames (``k >= 1``; skipped when none is complete), then :meth:`synthesise`.

        Arguments
        ---------
        chunk : torch.Tensor
            ``[B, n]`` the next samples.
        state : dict
            From :meth:`init_state`; updated in place.
        num_sources : int
            ``S``.
        estimate : callable
            ``[B, F, k]`` complex mixture frames -> ``[B, S, F, k]`` complex source frames.

        Returns
        -------
        torch.Tensor
            ``[B, m, S]`` the output samples finished.
        """
        spec = self.analyse(chunk, state)  # [B, F, k] complex, the frames completed
        if spec.shape[-1] == 0:
            estimates = spec.new_zeros(spec.shape[0], num_sources, *spec.shape[1:])
        else:
            estimates = estimate(spec)  # [B, S, F, k]
        return self.synthesise(estimates, state).transpose(1, 2)  # [B, m, S]

    def _envelope(self, start: int, length: int) -> torch.Tensor:
        """The overlap-added squared window at padded positions ``[start, start + length)``."""
        positions = torch.arange(start, start + length)
        periodic = self.n_fft - self.hop + (positions - (self.n_fft - self.hop)) % self.hop
        index = torch.where(positions < self.n_fft - self.hop, positions, periodic)
        return self.envelope[index].to(self.window.device)


class CausalConv1d(Conv1d):
    """A frames-last convolution padded on the left only: output ``t`` sees inputs ``<= s t``.

    ``y[t] = sum_m w[m] x[s t - (k - 1) + m]`` (zeros before the first frame), so a stride-``s``
    output ``t`` depends on input frames up to ``s t`` and the output has ``ceil(T / s)``
    frames. Same parameters as ``nn.Conv1d`` (``padding=0``); :meth:`forward_streaming` keeps
    the inputs the next outputs still need, so chunks give what one call gives.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int
        Kernel size ``k``.
    stride : int
        Stride ``s``.
    groups : int
        Convolution groups.
    bias : bool
        Whether the convolution has a bias.

    Example
    -------
    >>> conv = CausalConv1d(4, 4, 5, stride=2, groups=4)
    >>> x = torch.randn(2, 9, 4)
    >>> conv(x).shape
    torch.Size([2, 5, 4])
    >>> a, state = conv.forward_streaming(x[:, :4], conv.init_state(2))
    >>> b, state = conv.forward_streaming(x[:, 4:], state)
    >>> torch.allclose(torch.cat([a, b], 1), conv(x), atol=1e-6)
    True
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        check_positive_int(kernel_size=kernel_size, stride=stride)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups,
                         bias=bias, frames_last=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C_in] -> [B, ceil(T / s), C_out]``, zeros on the left."""
        return super().forward(nn.functional.pad(x, (0, 0, self.kernel_size[0] - 1, 0)))

    def init_state(self, batch: int) -> torch.Tensor:
        """The left padding of a new stream: ``[batch, k - 1, C_in]`` zeros."""
        return self.weight.new_zeros(batch, self.kernel_size[0] - 1, self.in_channels)

    def forward_streaming(self, x: torch.Tensor,
                          state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs the next frames ``x`` (``[B, n, C_in]``, ``n >= 0``) complete.

        Returns ``[B, m, C_out]`` (``m >= 0``: the stride groups arrivals) and the new state.
        """
        if x.shape[1] == 0:  # the state never holds a whole window (k - 1 frames at most)
            return state.new_zeros(state.shape[0], 0, self.out_channels), state
        buffer = torch.cat([state, x.to(state.dtype)], dim=1)  # [B, k - 1 + n, C_in]
        kernel, stride = self.kernel_size[0], self.stride[0]
        count = (buffer.shape[1] - kernel) // stride + 1 if buffer.shape[1] >= kernel else 0
        used = buffer[:, :(count - 1) * stride + kernel]
        if count == 0:
            return buffer.new_zeros(buffer.shape[0], 0, self.out_channels), buffer
        if self.groups == self.in_channels == self.out_channels and kernel > 1:
            # depthwise on a few frames: window products (a oneDNN conv call costs ~0.3 ms)
            out = (used.unfold(1, kernel, stride) * self.weight[:, 0]).sum(-1)  # [B, m, C]
            out = out if self.bias is None else out + self.bias
        else:
            out = Conv1d.forward(self, used)  # [B, m, C_out]
        return out, buffer[:, count * stride:]


class CausalConvNorm(nn.Module):
    """:class:`CausalConv1d`, then a frame-wise LayerNorm, then an optional PReLU.

    The causal counterpart of :class:`~gass_modules.lobes.parts.blocks.ConvNorm`: gLN's statistics
    span every frame, so it is replaced by a LayerNorm over the channels of each frame (the cLN
    of causal Conv-TasNet, SpeechBrain's ``ChannelwiseLayerNorm``; ``nn.LayerNorm`` computes it
    fused), which needs no state when streaming.

    Arguments
    ---------
    in_channels, out_channels, kernel_size, stride, groups, bias
        Those of :class:`CausalConv1d`.
    activation : bool
        Append a PReLU.

    Example
    -------
    >>> layer = CausalConvNorm(4, 6, 3, stride=2, activation=True)
    >>> x = torch.randn(2, 7, 4)
    >>> a, state = layer.forward_streaming(x[:, :2], layer.init_state(2))
    >>> b, state = layer.forward_streaming(x[:, 2:], state)
    >>> torch.allclose(torch.cat([a, b], 1), layer(x), atol=1e-6), layer(x).shape
    (True, torch.Size([2, 4, 6]))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True, activation: bool = False) -> None:
        super().__init__()
        self.conv = CausalConv1d(in_channels, out_channels, kernel_size, stride, groups, bias)
        self.norm = nn.LayerNorm(out_channels, eps=1e-8)  # gLN's eps
        self.act = nn.PReLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C_in] -> [B, ceil(T / stride), C_out]``."""
        return self.act(self.norm(self.conv(x)))

    def init_state(self, batch: int) -> torch.Tensor:
        """The convolution's state (see :meth:`CausalConv1d.init_state`)."""
        return self.conv.init_state(batch)

    def forward_streaming(self, x: torch.Tensor,
                          state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`CausalConv1d.forward_streaming`, normalised and activated."""
        y, state = self.conv.forward_streaming(x, state)
        return (self.act(self.norm(y)) if y.shape[1] else y), state


def causal_mean_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Means over windows of ``factor`` frames that end at frames ``factor * c``.

    Output ``c`` averages input frames ``factor * c - factor + 1 .. factor * c`` (zeros before
    frame 0): coarse frame ``c`` then summarises nothing later than the fine frame it is
    aligned with (the strided :class:`CausalConv1d` aligns the same way).

    Arguments
    ---------
    x : torch.Tensor
        ``[B, T, C]``, ``T`` a multiple of ``factor``.
    factor : int
        Window and stride.

    Returns
    -------
    torch.Tensor
        ``[B, T / factor, C]``.

    Example
    -------
    >>> causal_mean_pool(torch.arange(1.0, 7.0).view(1, 6, 1), 2).flatten()
    tensor([0.5000, 2.5000, 4.5000])
    """
    padded = nn.functional.pad(x, (0, 0, factor - 1, 0))[:, :x.shape[1]]
    return padded.unflatten(1, (-1, factor)).mean(2)


def lookback_mask(length: int, lookback: int, device: torch.device | None = None
                  ) -> torch.Tensor:
    """The attention mask of a bounded look-back: query ``i`` sees keys ``i - lookback < j <= i``.

    Arguments
    ---------
    length : int
        Sequence length.
    lookback : int
        Frames each query sees (itself included).
    device : torch.device, optional
        Where the mask lives.

    Returns
    -------
    torch.Tensor
        ``[length, length]`` bool, ``True`` where attention is allowed.

    Example
    -------
    >>> lookback_mask(4, 2).int()
    tensor([[1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    steps = torch.arange(length, device=device)
    distance = steps[:, None] - steps[None, :]  # [L, L]: i - j
    return (distance >= 0) & (distance < lookback)


def stream_sequential(layers: nn.Sequential, x: torch.Tensor, states: list) -> torch.Tensor:
    """Streams ``x`` through ``layers``: those with ``forward_streaming`` carry a state.

    Arguments
    ---------
    layers : torch.nn.Sequential
        Layers; the others (activations, dropout) act frame by frame.
    x : torch.Tensor
        The next frames.
    states : list
        One entry per layer (``None`` for stateless ones), from :func:`sequential_state`;
        updated in place.

    Returns
    -------
    torch.Tensor
        The frames the layers complete.

    Example
    -------
    >>> layers = nn.Sequential(CausalConv1d(2, 2, 3), nn.ReLU())
    >>> x = torch.randn(1, 5, 2)
    >>> states = sequential_state(layers, 1)
    >>> parts = [stream_sequential(layers, p, states) for p in x.split(2, dim=1)]
    >>> torch.allclose(torch.cat(parts, 1), layers(x), atol=1e-6)
    True
    """
    for i, layer in enumerate(layers):
        if states[i] is None:
            x = layer(x)
        else:
            x, states[i] = layer.forward_streaming(x, states[i])
    return x


def sequential_state(layers: nn.Sequential, batch: int) -> list:
    """The states :func:`stream_sequential` starts from (``None`` for stateless layers).

    Arguments
    ---------
    layers : torch.nn.Sequential
        Layers.
    batch : int
        Number of streams.

    Returns
    -------
    list
        One state per layer.

    Example
    -------
    >>> [None if s is None else tuple(s.shape)
    ...  for s in sequential_state(nn.Sequential(CausalConv1d(2, 3, 4), nn.ReLU()), 5)]
    [(5, 3, 2), None]
    """
    return [layer.init_state(batch) if hasattr(layer, "forward_streaming") else None
            for layer in layers]


__all__ = ["CausalConv1d", "CausalConvNorm", "ResidualLSTM", "StreamingSTFT", "causal_mean_pool",
           "lookback_mask", "sequential_state", "stream_sequential"]
