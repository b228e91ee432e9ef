"""A bidirectional LSTM that exports with a symbolic sequence length, and its residual block.

``torch.export`` cannot trace ``nn.LSTM`` with a symbolic sequence length (its decomposition
unrolls time and pins the length, pytorch/pytorch#115092), so :class:`ExportableBLSTM` runs the
same recurrence with ``torch``'s ``scan`` while exporting and the fused ``nn.LSTM`` kernel
otherwise, on the same parameters. :class:`ResidualBLSTM` is the ``x + FC(BLSTM(LN(x)))`` layer
that BSRNN's band-and-sequence blocks stack.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from gass_modules.lobes.base import check_positive_int

# torch.compiler.is_exporting arrived in torch 2.7; on the declared floor (2.6) nothing exports
# (export_separator refuses torch < EXPORT_MIN_TORCH with a message) and eager calls run nn.LSTM
_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)

# torch 2.11's scan partitioner sets its own logger to DEBUG when imported (a leftover), so every
# export of a scan printed each traced graph; let it follow torch's logging settings instead.
logging.getLogger("torch._higher_order_ops.partitioner").setLevel(logging.NOTSET)


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
        if _is_exporting():
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
