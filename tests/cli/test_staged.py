"""applydiff-using-staging-dir on vfs: usage as the other commands, Go's not-supported error."""

from __future__ import annotations

from pathlib import Path

from .conftest import CLI


def test_vfs_cli_is_a_one_line_error(tmp_path: Path) -> None:
    cli = CLI(tmp_path / "g", tmp_path / "r", "vfs")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("f")
    layer = cli.ok("create-layer").strip()
    r = cli("applydiff-using-staging-dir", layer, str(src))
    assert (r.rc, r.out, r.err) == (1, "", "not supported\n")
    r = cli("applydiff-using-staging-dir", layer)
    assert r.rc == 1
    assert r.out.startswith("applydiff-using-staging-dir: more arguments required.\n"
                            "Usage: containers-storage applydiff-using-staging-dir "
                            "layerNameOrID directory\n")
    r = cli("applydiff-using-staging-dir", layer, str(tmp_path / "missing"))
    assert (r.rc, r.err) == (1, f"lstat {tmp_path / 'missing'}: no such file or directory\n")
