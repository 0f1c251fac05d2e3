"""Start-up of the ``make binary`` zipapp: run from an extracted copy of the archive when one can
be trusted, else from the archive itself.

Importing through zipimport made the zipapp slower than the installed script (issue 13): the
interpreter parses the whole zip directory in Python before ``__main__`` runs (~23M instructions
for 570 members; ``python -c pass`` is 91M), then reads each module through Python file objects.
So the archive holds only ``__main__``, this module and ``PAYLOAD``, a stored zip of the
modules. The first run extracts the payload into ``$XDG_CACHE_HOME/cs_core/zipapp/<key>/``
(bytecode into ``__pycache__``, where the path finder looks for it) and every run imports
from there. The key is the archive's device, inode, size, mtime and ctime, so a rebuilt or
replaced binary gets a fresh copy.

The copy is code that runs, as root too, so it is used only if the cache directory, ``cs_core``,
``zipapp`` and the copy are real directories (not symlinks), owned by the effective user, and
writable by nobody else. Anything else (another user's ``$HOME``, a read-only home) extracts
into a private temporary directory for this run only, removed when it ends: slower, same result.
"""

from __future__ import annotations

import os
import stat
import sys

_KEEP = 3  # extracted copies kept per user (older ones belong to replaced binaries)
PAYLOAD = "payload.zip"


def _trusted_dir(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _cache_root() -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    root = os.path.join(base, "cs_core", "zipapp")
    if not _trusted_dir(root):
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError:
            return None
    if all(_trusted_dir(p) for p in (base, os.path.dirname(root), root)):
        return root
    return None


def _key(archive: str) -> str:
    st = os.stat(archive)
    return (f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}-"
            f"{sys.implementation.cache_tag}")


def _unpack(archive: str, dest: str) -> None:
    """The payload's members into ``dest`` (an empty directory), bytecode into __pycache__."""
    import zipfile

    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(archive) as outer, outer.open(PAYLOAD) as inner, \
            zipfile.ZipFile(inner) as payload:
        for m in payload.infolist():
            parts = m.filename.split("/")
            if m.is_dir() or m.filename.startswith("/") or any(p in ("", ".", "..") for p in parts):
                continue  # not a member we wrote
            head, _, name = m.filename.rpartition("/")
            if name.endswith(".pyc"):  # an interpreter of another version ignores it
                head = f"{head}/__pycache__" if head else "__pycache__"
                name = f"{name[:-4]}.{tag}.pyc"
            directory = os.path.join(dest, head)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(os.path.join(directory, name), "xb") as out:
                out.write(payload.read(m))


def _extract(archive: str, root: str, key: str) -> str | None:
    """Unpack beside the final name, flush, then rename into place, so a crash never leaves a
    half copy under the key."""
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    final = os.path.join(root, key)
    try:
        _unpack(archive, tmp)
        os.sync()  # the copy is complete on disk before its name says so
        try:
            os.rename(tmp, final)
        except OSError:  # another process won the race: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, key)
    return final if _trusted_dir(final) else None


def _private_copy(archive: str) -> str:
    """A copy for this run only, removed at exit (the CLI runs exit handlers before it ends)."""
    import atexit
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="cs_core-zipapp-")
    atexit.register(shutil.rmtree, tmp, True)
    _unpack(archive, tmp)
    return tmp


def _prune(root: str, key: str) -> None:
    import shutil

    copies = sorted((e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)
                     and e.name != key and not e.name.startswith(".tmp-")),
                    key=lambda e: e.stat(follow_symlinks=False).st_mtime, reverse=True)
    for old in copies[_KEEP - 1:]:
        shutil.rmtree(old.path, ignore_errors=True)


def extracted_copy(archive: str) -> str | None:
    """The trusted extracted copy of ``archive``, made now if there is none; None if there is
    no place to keep one."""
    try:
        root = _cache_root()
        if root is None:
            return None
        key = _key(archive)
        copy = os.path.join(root, key)
        if _trusted_dir(copy):
            return copy
        return _extract(archive, root, key) if not os.path.lexists(copy) else None
    except OSError:
        return None


def run() -> None:
    archive = sys.path[0]
    copy = None if os.environ.get("CS_CORE_ZIPAPP_NO_CACHE") else extracted_copy(archive)
    sys.path[0] = copy or _private_copy(archive)
    from cs_core.cli.main import main

    main()
