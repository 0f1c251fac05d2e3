"""mkdocs hooks (mkdocs.yml `hooks:`): fit the generated CLI pages into the site.

The pages come from `python -m cs_core.cli.mkdocs` and stay man-page markdown (pandoc's `%`
title line), so the hooks list them in the nav themselves (a new command needs no mkdocs.yml
edit), turn the `%` line into the page's heading and escape the brackets of the synopsis
(`[options [...]] [configFile]` would otherwise read as a reference link).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PLACEHOLDER = "cli-placeholder"
PROG = "containers-storage"
_TITLE = re.compile(r"\A% (\S+) (\d)\n")


def _cli_nav(docs: Path) -> list[Any]:
    pages: list[Any] = [{f"{PROG}(1)": f"{PROG}.md"}]
    for page in sorted(docs.glob(f"{PROG}-*.md")):
        pages.append({page.stem.removeprefix(f"{PROG}-"): page.name})
    return pages


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and PLACEHOLDER in item.values():
            (title,) = item
            config["nav"][i] = {title: _cli_nav(docs)}
    return config


def _synopsis(line: str) -> str:
    if not line.startswith(f"**{PROG}**"):
        return line
    return line.replace("[", "\\[").replace("]", "\\]")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    match = _TITLE.match(markdown)
    if not match:
        return markdown
    body = "\n".join(_synopsis(line) for line in markdown[match.end():].split("\n"))
    return f"# {match[1]}({match[2]})\n{body}"
