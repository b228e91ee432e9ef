"""Crops of buffered shard clips, decoded once when the clip enters its shuffle buffer.

A shuffle buffer of the shard source (:mod:`gass_modules.dataio.shard_source`) holds about a
thousand clips per loader worker. Keeping each clip whole, as read from the tar, costs its full
size (10 s of 16-kHz PCM: 320 kB) although a source uses one crop of it. So the crop starts of
a clip are drawn when it enters the buffer (:func:`~gass_modules.dataio.mixer.crop_span`, one
per crop the clip will give, from a generator seeded by its stream position) and only the
frames those crops need are decoded and kept (:class:`BufferedClip`), as compact integer PCM
where the audio is integer PCM. At draw time a crop is a slice of them, converted to float32
exactly as ``soundfile`` would have converted it (:func:`~gass_modules.dataio.mixer.
finish_crop` then makes it a mixer source).

Decoding: PCM WAV (16- and 32-bit integer, 32-bit float, the common shard codec of "original"
shards) is read by hand, by :func:`wav_frames`: a RIFF chunk walk and ``numpy.frombuffer`` on
the data chunk. soundfile reads from memory only through Python callbacks (its virtual I/O):
a 6-s crop of a 16-kHz WAV took ≈270 µs that way against ≈30 µs as a numpy slice
(benchmarks/bench_shards.py), and the mixer reads four per mixture. Every other codec or WAV
variant (FLAC, Ogg, MP3, 24-bit or 8-bit WAV, WAVE_FORMAT_EXTENSIBLE with padded samples) is
decoded by ``soundfile``, which is what knows codecs.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
import soundfile as sf

# (format tag, bits per sample) -> sample dtype and its float32 scale (soundfile's: a power of
# two, so ``int * scale`` is exact and equals its own conversion bit for bit; None: float data)
_WAV_FORMATS = {(1, 16): ("<i2", 2.0**-15), (1, 32): ("<i4", 2.0**-31), (3, 32): ("<f4", None)}
# soundfile's integer reads of integer PCM, kept as integers (half or a quarter of float32)
_SF_INTEGER = {"PCM_16": ("int16", 2.0**-15), "PCM_24": ("int32", 2.0**-31),
               "PCM_32": ("int32", 2.0**-31)}
# the tail of KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT after its 2-byte format tag
_EXTENSIBLE_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def wav_frames(audio: bytes) -> tuple[np.ndarray, float | None] | None:
    """The samples of a PCM WAV held in memory, without copying them, or None.

    Arguments
    ---------
    audio : bytes
        A whole file's bytes.

    Returns
    -------
    tuple or None
        ``(frames [n, C], scale)``: a read-only view of the data chunk (``int16``, ``int32``
        or ``float32``) and the factor that makes it soundfile's float32 (None for float
        data); None when ``audio`` is not a little-endian WAV of those sample formats (then
        read it with soundfile).

    Example
    -------
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.array([[0.5, -0.25]] * 3), 8000, format="WAV", subtype="PCM_16")
    >>> frames, scale = wav_frames(buf.getvalue())
    >>> frames.tolist()[0], scale
    ([16384, -8192], 3.0517578125e-05)
    >>> wav_frames(b"fLaC...") is None
    True
    """
    if len(audio) < 12 or audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(audio):
        chunk, size = audio[pos:pos + 4], int.from_bytes(audio[pos + 4:pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16:
                return None
            tag, channels, _, _, block, bits = struct.unpack_from("<HHIIHH", audio, body)
            if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the format is its sub-format GUID
                if size < 40 or audio[body + 26:body + 40] != _EXTENSIBLE_GUID_TAIL:
                    return None
                valid, = struct.unpack_from("<H", audio, body + 18)
                if valid != bits:  # e.g. 24 valid bits in 32: soundfile's own rules apply
                    return None
                tag, = struct.unpack_from("<H", audio, body + 24)
            fmt = (tag, channels, block, bits)
        elif chunk == b"data":
            if fmt is None:
                return None
            tag, channels, block, bits = fmt
            if (tag, bits) not in _WAV_FORMATS or channels < 1 or block != channels * bits // 8:
                return None
            dtype, scale = _WAV_FORMATS[(tag, bits)]
            # a streamed WAV may leave the size 0 or 0xFFFFFFFF: the data then runs to the end
            end = len(audio) if size in (0, 0xFFFFFFFF) else min(len(audio), body + size)
            n = (end - body) // block
            frames = np.frombuffer(audio, dtype=dtype, count=n * channels, offset=body)
            return frames.reshape(n, channels), scale
        pos = body + size + (size & 1)  # chunks are padded to even sizes
    return None


class BufferedClip:
    """A clip in a shuffle buffer: its record, stream position, and the frames of its crops.

    Arguments
    ---------
    record : dict
        The shard record (``id``, ``group``, ``sample_rate``, ``frames``...).
    audio : bytes
        The encoded clip as read from the shard (not kept: only the crops' frames are).
    position : tuple of int
        Its stream position ``(pass, shard, sample)``.
    spans : sequence of (start, first, last)
        One :func:`~gass_modules.dataio.mixer.crop_span` per crop the clip will give.

    Example
    -------
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.linspace(-1, 1, 100, dtype=np.float32), 8000, format="WAV",
    ...          subtype="PCM_16")
    >>> clip = BufferedClip({"id": "a", "frames": 100}, buf.getvalue(), (0, 0, 0),
    ...                     [(10, 10, 30), (50, 50, 70)])
    >>> clip.kept_frames, clip.crop(1).shape
    (60, (20, 1))
    >>> bool(np.array_equal(clip.crop(1), sf.read(io.BytesIO(buf.getvalue()), start=50,
    ...                     frames=20, dtype="float32", always_2d=True)[0]))
    True
    """

    __slots__ = ("first", "frames", "position", "record", "scale", "spans", "uses")

    def __init__(self, record: dict, audio: bytes, position: tuple[int, int, int],
                 spans: Sequence[tuple[int, int, int]]) -> None:
        self.record = record
        self.position = position
        self.spans = [tuple(int(v) for v in span) for span in spans]
        self.uses = 0
        first = min(span[1] for span in self.spans)
        last = max(span[2] for span in self.spans)
        self.first = first
        whole = wav_frames(audio)
        if whole is not None and whole[0].shape[0] >= int(record["frames"]):
            # a copy of only the frames needed, so that the clip's bytes can be freed
            self.frames, self.scale = whole[0][first:last].copy(), whole[1]  # [n, C]
            return
        with sf.SoundFile(io.BytesIO(audio)) as f:  # any other codec: soundfile decodes
            dtype, self.scale = _SF_INTEGER.get(f.subtype, ("float32", None))
            f.seek(min(first, f.frames))
            self.frames = f.read(last - first, dtype=dtype, always_2d=True)  # [n, C]

    @property
    def kept_frames(self) -> int:
        """Frames held for the crops (the union of their spans)."""
        return int(self.frames.shape[0])

    def crop(self, k: int) -> np.ndarray:
        """Frames ``first..last`` of crop ``k`` as float32, as ``soundfile.read`` gives them.

        Arguments
        ---------
        k : int
            Which crop (``0 <= k < len(spans)``).

        Returns
        -------
        numpy.ndarray
            ``[n, C]`` float32 (``n`` is 0 when the clip holds fewer frames than its record
            says).
        """
        _, first, last = self.spans[k]
        data = self.frames[first - self.first:last - self.first].astype(np.float32)  # [n, C]
        if self.scale is not None:
            data *= np.float32(self.scale)
        return data


__all__ = ["BufferedClip", "wav_frames"]
