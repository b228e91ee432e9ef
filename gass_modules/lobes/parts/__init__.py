"""Building blocks shared by the separators of :mod:`gass_modules.lobes`:
attention, band plans and band layers, U-Net blocks, masks, causal layers.

Example
-------
>>> import gass_modules.lobes.parts as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.lobes.parts.band_layers import BandSplit, MaskEstimator
from gass_modules.lobes.parts.bands import BAND_PLANS, band_bins, check_band_plan
from gass_modules.lobes.parts.masking import make_mask_activation
from gass_modules.lobes.parts.uconv import UConvBlock

__all__ = [
    "BAND_PLANS",
    "band_bins",
    "check_band_plan",
    "BandSplit",
    "MaskEstimator",
    "make_mask_activation",
    "UConvBlock",
]
