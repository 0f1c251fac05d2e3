"""Exception hierarchy.

Each error carries the Go library's message text, so that CLI output matches the Go
`containers-storage` CLI, and an exit code for the CLI. Call sites wrap with context the way
Go's ``fmt.Errorf("...: %w", err)`` does: ``str(exc)`` is the full one-line message.

Catch :class:`StorageError` for anything cs_core raises on purpose, or a group below it. The
groups are also the built-in exceptions Python code already expects, so ``except KeyError``
around a lookup and ``except FileExistsError`` around a create work too::

    StorageError                      (Exception)
    ├── NotFound                      (also KeyError)
    │   ├── LayerUnknown, ImageUnknown, ContainerUnknown, ParentUnknown
    │   └── NotALayer, NotAnImage, NotAContainer, NotAnID
    ├── AlreadyExists                 (also FileExistsError, errno EEXIST)
    │   └── DuplicateID, DuplicateName (= NameInUse)
    ├── InUse
    │   └── LayerHasChildren, LayerUsedByImage, LayerUsedByContainer, ImageUsedByContainer
    ├── InvalidID, InvalidBigDataName (also ValueError)
    ├── NotSupported → Unsupported → DriverNotInstalled
    ├── CorruptRecordFile, ConfigError, DriverError, PluginError,
    │   StoreClosed, IncompleteOptions, …
    └── UnsafeArchive → ArchiveFormatError

``str(exc)`` is always the one-line message (never ``KeyError``'s quoted repr). The
``containers-storage`` CLI prints that line on stderr and exits with the error's
``exit_code``:

=====================================================  =========
What failed                                            Exit code
=====================================================  =========
any :class:`StorageError` (every class above)          1
an OS error outside these (``open /x: …``)             1
a command's unknown flag, or ``COMMAND --help``        125
an unknown global flag or command, too few or too      1
many arguments
a command that reports per argument (``exists``,       1 if any
``delete``, ``mount``, ``add-names``, …)               failed
interrupted (Ctrl-C)                                   130
=====================================================  =========
"""

from __future__ import annotations

import errno


class StorageError(Exception):
    """Base of every error cs_core raises on purpose."""

    message = "storage error"
    exit_code = 1

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.detail:
            return f"{self.detail}: {self.message}"
        return self.message

    def wrap(self, context: str) -> StorageError:
        """Return a copy of this error with more context in front (like Go's %w)."""
        new = type(self)(f"{context}: {self.detail}" if self.detail else context)
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k != "detail"})
        return new


class ExactMessage:
    """Mixin for a StorageError whose text is its detail alone, without the generic suffix.

    Drivers use it for errors that must read exactly as Go's driver messages do.
    """

    detail: str | None
    message: str

    def __str__(self) -> str:
        return self.detail or self.message


class NotFound(StorageError, KeyError):
    """Nothing in the store answers to that ID or name (also a ``KeyError``)."""

    message = "not known"


class AlreadyExists(StorageError, FileExistsError):
    """An ID or name is taken (also a ``FileExistsError`` with ``errno`` EEXIST)."""

    message = "already in use"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.errno = errno.EEXIST


class InUse(StorageError):
    """The item is still needed by another (a child layer, an image, a container)."""

    message = "in use"


class ContainerUnknown(NotFound):
    message = "container not known"


class DigestUnknown(StorageError):
    message = "could not compute digest of item"


class DuplicateID(AlreadyExists):
    message = "that ID is already in use"


class DuplicateImageNames(StorageError):
    message = "read-only image store assigns the same name to multiple images"


class DuplicateLayerNames(StorageError):
    message = "read-only layer store assigns the same name to multiple layers"


class DuplicateName(AlreadyExists):
    message = "that name is already in use"


#: The name users of other container libraries look for.
NameInUse = DuplicateName


class ImageUnknown(NotFound):
    message = "image not known"


class ImageUsedByContainer(InUse):
    message = "image is in use by a container"


class IncompleteOptions(StorageError):
    message = "missing necessary StoreOptions"


class InvalidID(StorageError, ValueError):
    """An ID that would not stay one directory name inside the store."""

    message = "not a valid ID"


class InvalidBigDataName(StorageError, ValueError):
    message = "not a valid name for a big data item"


class LayerHasChildren(InUse):
    message = "layer has children"


class LayerNotMounted(StorageError):
    message = "layer is not mounted"


class LayerUnknown(NotFound):
    message = "layer not known"


class LayerUsedByContainer(InUse):
    message = "layer is in use by a container"


class LayerUsedByImage(InUse):
    message = "layer is in use by an image"


class NotAContainer(NotFound):
    message = "identifier is not a container"


class NotALayer(NotFound):
    message = "identifier is not a layer"


class NotAnID(NotFound):
    message = "identifier is not a layer, image, or container"


class NotAnImage(NotFound):
    message = "identifier is not an image"


class ParentIsContainer(StorageError):
    message = "would-be parent layer is a container"


class ParentUnknown(NotFound):
    message = "parent of layer not known"


class SizeUnknown(StorageError):
    message = "size is not known"


class StoreClosed(StorageError):
    """A method of a store handle that ``close()`` (or a ``with`` block) has closed."""

    message = "store is closed"


class StoreIsReadOnly(StorageError):
    message = "called a write method on a read-only store"


class NotSupported(StorageError):
    message = "not supported"


class Unsupported(ExactMessage, NotSupported):
    """A :class:`NotSupported` whose detail says it all (no ``: not supported`` after it)."""


class DriverNotInstalled(Unsupported):
    """The graph driver asked for is not installed; the text says which setting asked for
    it, the package to install and the drivers that are installed."""


class InvalidMappings(StorageError):
    message = "invalid mappings specified"


class ShiftingNotEnabled(StorageError):
    """A mount asked for ID maps the driver cannot apply and the layer does not have."""

    message = "shifting not enabled"


class NoAvailableIDs(StorageError):
    message = "not enough unused IDs in user namespace"


class CorruptRecordFile(StorageError):
    """A bookkeeping file that cannot be parsed. Never silently overwritten.

    Made by :meth:`in_file`, the message ends with how to recover from that kind of file.
    """

    message = "corrupt bookkeeping file"
    path: str | None = None

    @classmethod
    def in_file(cls, path: object, detail: str) -> CorruptRecordFile:
        error = cls(detail)
        error.path = str(path)
        return error

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; {recovery_hint(self.path)}" if self.path else text


_RECOVERY = {
    "layers.json": "restore {path} from a backup, or move it aside, which forgets its layers "
                   "(`containers-storage check` then lists what used them)",
    "images.json": "restore {path} from a backup, or move it aside, which forgets its images "
                   "(their layers stay)",
    "containers.json": "restore {path} from a backup, or move it aside, which forgets its "
                       "containers (their layers stay)",
    "mountpoints.json": "it holds only mount counts: with nothing mounted, remove {path}",
}


def recovery_hint(path: str) -> str:
    """What to do about a corrupt bookkeeping file at ``path``."""
    name = path.rpartition("/")[2]
    if name.startswith("volatile-"):
        return f"it holds only records that do not survive a reboot: remove {path} to forget them"
    return _RECOVERY.get(name, "restore {path} from a backup").format(path=path)


class ConfigError(StorageError):
    message = "invalid storage configuration"


class DriverError(StorageError):
    """Choosing or starting a graph driver failed; the detail says which and why, in Go's
    words where Go has them (so no generic suffix follows it)."""

    message = "graph driver error"

    def __str__(self) -> str:  # not ExactMessage as a base: drivers combine the two
        return self.detail or self.message


class PluginError(StorageError):
    """A plugin failed to load or registered something invalid."""

    message = "plugin error"


class UnsafeArchive(StorageError):
    """Hostile or malformed tar content rejected by the tar engine."""

    message = "unsafe or malformed archive"


class ArchiveFormatError(ExactMessage, UnsafeArchive):
    """A stream that is not a (whole) tar or compressed stream, in Go's words alone.

    Go's ``archive/tar`` and decoders say ``archive/tar: invalid tar header`` or
    ``unexpected EOF`` without further context; scripts (upstream's apply-junk test) look
    for those texts.
    """


class UsageError(StorageError):
    """A user mistake on the command line (exit code as Go's CLI)."""

    message = "usage error"


class UserNamespaceTooBig(StorageError):
    """An auto user namespace would exceed ``auto-userns-max-size`` (Go words it alone)."""

    message = "the container needs a user namespace bigger than the maximum allowed"

    def __str__(self) -> str:
        return self.detail or self.message
