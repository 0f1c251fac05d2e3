"""``mountopt=metacopy=on``: detected by a test mount, used, and the native diff turned off."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable

from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import CreateOpts, MountOpts


def test_metacopy_detected_and_diff_stays_correct(make_driver: Callable[..., OverlayDriver]) -> None:
    d = make_driver("overlay.mountopt=nodev,metacopy=on")
    status = dict(d.status())
    assert status["Using metacopy"] == "true"
    assert status["Native Overlay Diff"] == "false"  # metacopy brings redirect_dir: upper alone lies
    names = set(os.listdir(d.run_home))
    assert {"metacopy(nodev,metacopy=on)-true", "native-diff(nodev,metacopy=on)-false"} <= names
    reason = (d.run_home / "native-diff(nodev,metacopy=on)-false").read_text()
    assert reason.endswith("kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled")

    base, top = layer_id(1), layer_id(2)
    d.create(base, None, CreateOpts())
    (d.home / base / "diff" / "data").write_bytes(b"payload")
    d.create_read_write(top, base, CreateOpts())
    merged = d.get(top, MountOpts())
    try:
        os.chmod(merged / "data", 0o600)  # a metadata-only copy-up
    finally:
        d.put(top)
    upper = d.home / top / "diff" / "data"
    assert os.getxattr(upper, "trusted.overlay.metacopy") is not None
    assert upper.read_bytes() != b"payload"  # no data copied up: the upper alone would lie
    # the naive diff (mount and compare) still exports the file's real content
    with d.diff(top, base) as stream, tarfile.open(fileobj=io.BytesIO(stream.read())) as tf:
        member = tf.getmember("data")
        assert member.mode & 0o777 == 0o600
        assert tf.extractfile(member).read() == b"payload"  # type: ignore[union-attr]
