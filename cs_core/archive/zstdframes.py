"""Following zstd frame and block headers, to notice a stream cut short.

``zstandard``'s stream reader ends quietly when its input ends inside a frame, where Go's
decoder says ``unexpected EOF``; a layer cut at a tar entry boundary would then import as a
shorter layer. The compressed bytes already pass through our reader, so this walks their
headers (RFC 8878: frame header, 3-byte block headers, optional checksum; skippable frames)
and skips the block contents: a few steps per 128 KiB block, no decoding.
"""

from __future__ import annotations

from typing import Any

from cs_core.archive.readahead import readinto

_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # ... 0x184D2A5F
_DICT_ID_BYTES = (0, 1, 2, 4)
_FCS_BYTES = (0, 2, 4, 8)  # flag 0 means 1 byte when the frame is a single segment


class FrameWalker:
    """Fed the compressed bytes in order; ``complete`` when they end between two frames."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._want = 4
        self._state = "magic"
        self._skip = 0
        self._checksum = False

    @property
    def complete(self) -> bool:
        return self._state in ("magic", "unknown") and not self._head and not self._skip

    def feed(self, data: memoryview) -> None:
        i, n = 0, len(data)
        while i < n and self._state != "unknown":
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            k = min(self._want - len(self._head), n - i)
            self._head += data[i:i + k]
            i += k
            if len(self._head) == self._want:
                head = bytes(self._head)
                self._head.clear()
                self._parse(head)

    def _expect(self, state: str, want: int) -> None:
        self._state, self._want = state, want

    def _parse(self, head: bytes) -> None:
        value = int.from_bytes(head, "little")
        if self._state == "magic":
            if value == _ZSTD_MAGIC:
                self._expect("descriptor", 1)
            elif value & 0xFFFFFFF0 == _SKIPPABLE:
                self._expect("skippable", 4)
            else:  # not ours to judge: the decoder rejects it with its own error
                self._expect("unknown", 4)
        elif self._state == "descriptor":
            single = bool(value & 0x20)
            self._checksum = bool(value & 0x04)
            fcs = _FCS_BYTES[value >> 6] or (1 if single else 0)
            rest = (0 if single else 1) + _DICT_ID_BYTES[value & 0x03] + fcs
            self._expect("header", rest) if rest else self._expect("block", 3)
        elif self._state == "header":
            self._expect("block", 3)
        elif self._state == "block":
            size = value >> 3
            self._skip = 1 if (value >> 1) & 0x03 == 1 else size  # an RLE block holds one byte
            if value & 0x01:  # the frame's last block, then its checksum if it has one
                self._skip += 4 if self._checksum else 0
                self._expect("magic", 4)
        else:  # skippable frame: its size, then that many bytes nobody reads
            self._skip = value
            self._expect("magic", 4)


class CheckedZstdInput:
    """The compressed input of a zstd decoder: raises EOFError where it ends inside a frame."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._frames = FrameWalker()

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(size if size > 0 else 1 << 20)
        n = readinto(self._raw, memoryview(buf))
        if not n:
            if not self._frames.complete:
                raise EOFError("zstd stream ends inside a frame")
            return b""
        del buf[n:]
        self._frames.feed(memoryview(buf))
        return bytes(buf)
