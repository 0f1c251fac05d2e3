"""What a command prints: Go's one-line error wording, text and JSON on stdout and stderr, and
binary streams that end the process quietly when the reader goes away (``| head``)."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, cast


def describe(exc: BaseException) -> str:
    """One line for an error, worded like Go's for OS errors (``open /x: no such file ...``)."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror[0].lower() + exc.strerror[1:]
        if exc.filename is not None:
            return f"{_os_op(exc)} {exc.filename}: {reason}"
        return reason
    return str(exc)


_OPS = {"makedirs": "mkdir", "mkdir": "mkdir", "lstat": "lstat", "stat": "stat",
        "rename": "rename", "replace": "rename", "unlink": "remove", "remove": "remove",
        "rmdir": "remove", "listdir": "open", "scandir": "open", "lchown": "lchown",
        "chown": "chown", "symlink": "symlink", "readlink": "readlink", "mknod": "mknod",
        "link": "link", "utime": "utimes", "chmod": "chmod", "open": "open"}
#: Compiled on the first error that needs it (~0.1 ms, on every run if compiled at import).
_call: list[re.Pattern[str]] = []


def _os_op(exc: OSError) -> str:
    """Go names the failing syscall ("mkdir /x: ..."); Python does not, so read it off the
    source line that raised, defaulting to "open" (what Go says for most file errors)."""
    if isinstance(op := getattr(exc, "go_op", None), str):
        return op
    import traceback

    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if not _call:
        _call.append(re.compile(r"\b(" + "|".join(_OPS) + r")\("))
    for frame in reversed(frames):
        if frame.line and (m := _call[0].search(frame.line)):
            return _OPS[m.group(1)]
    return "open"



class ReaderGone(BaseException):
    """Whoever read our stdout or stderr closed the pipe (``| head -1``).

    Not an OSError, nor even an Exception: no command's error handling may take the closed
    pipe for its own operation failing and report "broken pipe"; ``main`` ends the process
    as the Go CLI's ends, killed by SIGPIPE.
    """


@contextlib.contextmanager
def _reader_may_leave() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError as exc:
        raise ReaderGone from exc


def _write_all(raw: BinaryIO, data: bytes) -> None:
    # A raw (unbuffered) file returns short counts, and a short write's rest would be dropped
    # silently: the next write after the reader left is then never made, so no EPIPE either.
    view = memoryview(data)
    while view:
        view = view[raw.write(view) or 0:]


def out(text: str) -> None:
    with _reader_may_leave():
        stream = sys.stdout
        raw = getattr(stream, "buffer", None)
        if isinstance(raw, io.RawIOBase):  # python -u / PYTHONUNBUFFERED: no buffer to retry
            _write_all(cast(BinaryIO, raw), text.encode(stream.encoding, stream.errors or "strict"))
        else:
            stream.write(text)


def err(text: str) -> None:
    with _reader_may_leave():
        sys.stdout.flush()
        sys.stderr.write(text)
        sys.stderr.flush()


def emit_json(value: Any) -> None:
    """One Go-encoder document: compact JSON and a newline."""
    from cs_core.codec import go_json_dumps

    out(go_json_dumps(value) + "\n")


def unstructure(value: Any) -> Any:
    from cs_core.codec import unstructure as unstructure_value

    return unstructure_value(value)


class _PipeWriter:
    """stdout's binary buffer, its writes raising :class:`ReaderGone` for a closed pipe."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def write(self, data: bytes) -> int:
        with _reader_may_leave():
            _write_all(self._raw, data)
        return len(data)

    def flush(self) -> None:
        with _reader_may_leave():
            self._raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def binary_stdout() -> BinaryIO:
    with _reader_may_leave():
        sys.stdout.flush()
    return cast(BinaryIO, _PipeWriter(sys.stdout.buffer))


def binary_stdin() -> BinaryIO:
    return sys.stdin.buffer


def read_input(path: str) -> bytes:
    """The contents of ``path``, or of stdin when ``path`` is empty."""
    if path:
        with open(path, "rb") as f:
            return f.read()
    return binary_stdin().read()


def go_list(values: Any) -> str:
    """Go's ``%v`` of a slice: ``[a b c]``."""
    return "[" + " ".join(str(v) for v in values) + "]"
