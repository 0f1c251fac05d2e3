"""OCI/AUFS whiteouts in tar streams and their on-disk forms per driver."""

from __future__ import annotations

import enum

#: Prefix of a whiteout entry in a tar stream: ``.wh.<name>`` deletes ``<name>``.
WHITEOUT_PREFIX = ".wh."
#: Prefix of AUFS metadata entries (never real files).
WHITEOUT_META_PREFIX = ".wh..wh."
#: Entry marking its directory opaque: lower layers' contents are hidden.
WHITEOUT_OPAQUE_DIR = ".wh..wh..opq"


class WhiteoutFormat(enum.Enum):
    """How a driver represents deletions on disk after a tar stream is applied."""

    #: Remove the deleted path (directory drivers that hold full copies: vfs, btrfs).
    DELETE = "delete"
    #: Kernel overlayfs: character device 0/0 for a deleted entry, ``trusted.overlay.opaque``
    #: (``user.overlay.opaque`` with userxattr) = ``y`` on an opaque directory.
    OVERLAY = "overlay"
    #: Keep ``.wh.`` files literally (overlay with a FUSE mount program).
    AUFS = "aufs"
