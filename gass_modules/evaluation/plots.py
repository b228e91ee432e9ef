"""Spectrogram figures of a mixture, its references and each system's estimates.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from gass_modules.optional import import_optional


def plot_separation(path: str | Path, mix: torch.Tensor, targets: torch.Tensor,
                    estimates: Mapping[str, torch.Tensor], sample_rate: int,
                    n_fft: int = 512, hop_length: int = 128, title: str = "") -> Path:
    """Saves a spectrogram figure: the mixture, then per source the reference and each system.

    Arguments
    ---------
    path : str or pathlib.Path
        Output image (PNG).
    mix : torch.Tensor
        ``[T]`` mixture.
    targets : torch.Tensor
        ``[T, S]`` references.
    estimates : Mapping of str to torch.Tensor
        ``[T, S]`` aligned estimates per system name (e.g. ``{"model": ..., "IRM": ...}``).
    sample_rate : int
        Sample rate in Hz (axes in seconds and kHz).
    n_fft, hop_length : int
        STFT of the spectrograms.
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
        The image written.

    Example
    -------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "fig.png"
    >>> targets = torch.randn(4000, 2)
    >>> plot_separation(out, targets.sum(-1), targets, {"model": targets}, 8000).is_file()
    True
    """
    matplotlib = import_optional("matplotlib", "plots", "spectrogram figures")
    matplotlib.use("Agg")  # no display needed; safe to call repeatedly
    plt = import_optional("matplotlib.pyplot", "plots", "spectrogram figures")

    if mix.dim() != 1 or targets.dim() != 2 or targets.shape[0] != mix.shape[0]:
        raise ValueError(f"expected mix [T] and targets [T, S], got {tuple(mix.shape)} and "
                         f"{tuple(targets.shape)}")
    for name, est in estimates.items():
        if est.shape != targets.shape:
            raise ValueError(f"estimates {name!r} must be shaped like targets "
                             f"{tuple(targets.shape)}, got {tuple(est.shape)}")
    window = torch.hann_window(n_fft)

    def spec_db(x: torch.Tensor) -> np.ndarray:
        spec = torch.stft(x.detach().float().cpu(), n_fft, hop_length, window=window,
                          center=True, pad_mode="constant", return_complex=True)
        return (20 * torch.log10(spec.abs() + 1e-8)).numpy()  # [F, N]

    num = targets.shape[1]
    columns = ["reference", *estimates]
    fig, axes = plt.subplots(num + 1, len(columns), figsize=(3.2 * len(columns), 1.9 * (num + 1)),
                             squeeze=False, sharex=True, sharey=True)
    top = spec_db(mix).max()
    extent = (0, mix.shape[0] / sample_rate, 0, sample_rate / 2000)
    style = dict(origin="lower", aspect="auto", extent=extent, vmin=top - 80, vmax=top,
                 cmap="magma")
    axes[0, 0].imshow(spec_db(mix), **style)
    axes[0, 0].set_title("mixture", fontsize=9)
    for ax in axes[0, 1:]:
        ax.axis("off")
    for s in range(num):
        for c, name in enumerate(columns):
            signal = targets[:, s] if name == "reference" else estimates[name][:, s]
            axes[s + 1, c].imshow(spec_db(signal), **style)
            axes[s + 1, c].set_title(f"{name} {s + 1}", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["plot_separation"]
