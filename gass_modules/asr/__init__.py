"""Separation ahead of speech recognition: the front end, intonation scoring and
transcription of the separated streams.

Example
-------
>>> import gass_modules.asr as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.asr.frontend import GASSFrontEnd, rank_streams
from gass_modules.asr.intonation import IntonationScore
from gass_modules.asr.transcribe import SeparateThenTranscribe, StreamTranscript

__all__ = [
    "GASSFrontEnd",
    "rank_streams",
    "IntonationScore",
    "SeparateThenTranscribe",
    "StreamTranscript",
]
