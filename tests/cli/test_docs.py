"""The generated reference pages in docs/ match the click definitions."""

from __future__ import annotations

from pathlib import Path

import click

from cs_core.cli import mkdocs
from cs_core.cli.main import ordered_commands

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_are_current() -> None:
    assert mkdocs.main(["--check", str(DOCS)]) == 0, "run: python -m cs_core.cli.mkdocs docs"


def test_every_command_has_a_page_with_its_flags(tmp_path: Path) -> None:
    assert mkdocs.main([str(tmp_path)]) == 0
    for cmd in ordered_commands():
        page = (tmp_path / f"containers-storage-{cmd.name}.md").read_text()
        assert f"**{cmd.name}**" in page
        for param in cmd.params:
            if not isinstance(param, click.Option):
                continue
            for opt in param.opts:
                assert f"**{opt}**" in page, (cmd.name, opt)
    index = (tmp_path / "containers-storage.md").read_text()
    assert "(also createlayer)" in index and "**--storage-opt** *value* (repeatable)" in index
