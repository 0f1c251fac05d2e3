"""What a layer changes, and the tar that says so: the names callers import, each from the
module that does one job.

``changes_dirs`` follows Go's ``archive.ChangesDirs`` (compare two full trees,
:mod:`~cs_core.archive.changes_tree`), ``overlay_changes`` Go's ``archive.OverlayChanges`` (read
an overlay upper dir against its lowers, :mod:`~cs_core.archive.changes_overlay`), and the export
functions Go's ``ExportChanges`` / ``TarWithOptions`` with the overlay whiteout converter
(:mod:`~cs_core.archive.changes_export`). What they share (xattr reads, the lower-layer reader)
sits below them in ``changes_common`` and ``changes_lowers``.
Change paths are absolute inside the layer (``/etc/passwd``), as Go prints them.
"""

from __future__ import annotations

from cs_core.archive.changes_common import compared_xattrs
from cs_core.archive.changes_export import export_changes, export_tree
from cs_core.archive.changes_overlay import overlay_changes
from cs_core.archive.changes_tree import changes_dirs

__all__ = ["changes_dirs", "compared_xattrs", "export_changes", "export_tree", "overlay_changes"]
