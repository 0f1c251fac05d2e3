"""Griffe extension: read cs_core's reST-flavoured docstrings as mkdocstrings' Markdown.

cs_core's docstrings are written for `help()` and editors: Sphinx roles (:class:`cs_core.store.Store`),
`::` before a literal block, and `:param x:` fields wherever they read best. mkdocstrings
renders Markdown and its Sphinx-style parser takes everything after the first field as that
field's text, so this extension:

- turns each role into an optional cross-reference (a link when the site documents the
  target, plain code and no warning when it does not);
- ends a paragraph's `::` with a single colon (the indented block below is code already);
- moves field blocks (`:param x:` and its indented lines) after the prose.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|data|attr|mod|exc|obj):`~?([^`]+)`")
_FIELD = re.compile(r"^:(?:param|type|returns?|rtype|raises?|var|ivar)\b[^:]*:")


def _role(match: re.Match[str]) -> str:
    target = match[1]
    return f'<autoref identifier="{target}" optional><code>{target}</code></autoref>'


def _fields_last(text: str) -> str:
    prose: list[str] = []
    fields: list[str] = []
    in_field = False
    for line in text.split("\n"):
        if _FIELD.match(line):
            in_field = True
        elif in_field and line and not line[0].isspace():
            in_field = False
        (fields if in_field else prose).append(line)
    if not fields:
        return text
    return "\n".join(prose).rstrip() + "\n\n" + "\n".join(f for f in fields if f.strip())


def markdown_docstring(text: str) -> str:
    text = _ROLE.sub(_role, text)
    text = re.sub(r"(\S)::\n\n", r"\1:\n\n", text)
    return _fields_last(text)


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
