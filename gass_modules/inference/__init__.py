"""Inference: :class:`GASSSeparator`, chunked and streaming separation, stems on
disk and the ``gass-separate`` command line.

Example
-------
>>> import gass_modules.inference as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.inference.chunking import separate_chunked, stream_separation
from gass_modules.inference.separator import GASSSeparator
from gass_modules.inference.stems import Separation, separate_to_stems
from gass_modules.inference.streaming import StreamingSeparator, stream_to_stems

__all__ = [
    "GASSSeparator",
    "separate_chunked",
    "stream_separation",
    "Separation",
    "separate_to_stems",
    "StreamingSeparator",
    "stream_to_stems",
]
