"""Go's ``%q`` as the CLI prints paths: the ASCII fast path must quote exactly as the full rules do."""

from __future__ import annotations

import pytest

from cs_core.goformat import go_quote

# Expected strings are what Go's strconv.Quote prints for the same input.
GO_QUOTED = [
    ("/etc/passwd", '"/etc/passwd"'),
    ("/a b/c~!@#$%^&*()", '"/a b/c~!@#$%^&*()"'),
    ('/say "hi"', '"/say \\"hi\\""'),
    ("/back\\slash", '"/back\\\\slash"'),
    ("/tab\there", '"/tab\\there"'),
    ("/nl\n", '"/nl\\n"'),
    ("/cr\r", '"/cr\\r"'),
    ("/bell\x07", '"/bell\\a"'),
    ("/del\x7f", '"/del\\x7f"'),
    ("/caf\u00e9", '"/caf\u00e9"'),
    ("/bad\udcff", '"/bad\\xff"'),
    ("", '""'),
]


@pytest.mark.parametrize(("text", "quoted"), GO_QUOTED)
def test_go_quote_matches_go(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_is_quoted_alike_on_both_paths(code: int) -> None:
    """Each ASCII character amid printable text: the fast path (taken when the text is
    printable ASCII without quote or backslash) against the character-by-character one."""
    ch = chr(code)
    slow = "/x" + ch + "\u00e9"  # the non-ASCII tail forces the full rules
    assert go_quote("/x" + ch) == go_quote(slow)[:-2] + '"'
