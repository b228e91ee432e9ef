"""Separators: the SpeechBrain lobes of gass, one file per model.

Every separator follows the contract of :mod:`gass_modules.lobes.base`
(``forward(mix [B, T]) -> [B, T, S]``); the building blocks they share are in
:mod:`gass_modules.lobes.parts`.

Example
-------
>>> import gass_modules.lobes as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.lobes.band_split import BandSplitSeparator
from gass_modules.lobes.base import Separator, SeparatorDescription, check_mixture, export_separator
from gass_modules.lobes.bs_roformer import BSRoFormer
from gass_modules.lobes.bsrnn import BSRNN
from gass_modules.lobes.tdanet import TDANetSTFT, TDANetWav
from gass_modules.lobes.tiger import TIGER

__all__ = [
    "Separator",
    "SeparatorDescription",
    "check_mixture",
    "export_separator",
    "BandSplitSeparator",
    "BSRNN",
    "BSRoFormer",
    "TDANetSTFT",
    "TDANetWav",
    "TIGER",
]
