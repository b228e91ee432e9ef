"""Per-band layers of band-split models: bands grouped by width, band split, mask estimation.

A band-split model (BSRNN, Luo & Yu 2023) gives every band ``k`` of ``G_k`` bins its own
normalisation and weights. :class:`BandGroups` stacks the bands of equal width so that those
per-band layers run as one batched op per width; :class:`BandSplit` maps each band's ``[Re, Im]``
bins to ``N`` features (``[B, F, T]`` complex -> ``[B, T, K, N]``) and :class:`MaskEstimator`
maps ``N`` features back to a complex mask per bin and source (``[B, T, K, N]`` ->
``[B, S, F, T, 2]``). Their per-band norms (:data:`BAND_NORMS`, :data:`BAND_SPLIT_NORMS`) are
BSRNN's LayerNorm, BS-RoFormer's RMSNorm and, for the band split, TIGER's norm over a band's
features and frames. The bands come from a plan in Hz (:mod:`gass_modules.lobes.parts.bands`).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gass_modules.lobes.base import check_positive_int
from gass_modules.lobes.parts.output_layers import permute_source_groups


class BandGroups(nn.Module):
    """Bands grouped by bin count, so per-band layers run as one grouped op per width.

    BSRNN's layers are per band (band ``k`` has its own norm and weights). Bands with the same
    number of bins ``G`` are stacked, and their per-band LayerNorms and linear maps run as one
    batched op per layer: the same parameters as separate modules, a handful of ops instead of
    ``K`` (which also keeps ``torch.export`` tracing fast).

    Arguments
    ---------
    bins : sequence of (int, int)
        Contiguous bin ranges ``[start, end)`` from bin 0
        (see :func:`~gass_modules.lobes.parts.bands.band_bins`).

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
            raise ValueError(f"unknown band norm {norm!r}; use one of {(*BAND_NORMS, 'affine')}")
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
        Contiguous bin ranges ``[start, end)`` from bin 0
        (see :func:`~gass_modules.lobes.parts.bands.band_bins`).
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

    def permute_sources(self, order: list[int]) -> None:
        """Renumbers the masks in place: source ``k`` becomes source ``order[k]`` (the last
        layer's outputs are ``[2 (GLU halves), S, G * 2]`` in every group)."""
        for layers in self.layers:
            permute_source_groups(layers.weights[-1], order, dim=-1, halves=2)  # [n_g, H, out]
            permute_source_groups(layers.biases[-1], order, dim=-1, halves=2)  # [n_g, 1, out]

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
