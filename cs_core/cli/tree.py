"""The ``layers --tree`` renderer (the Go CLI's tree.go, same glyphs and indentation)."""

from __future__ import annotations

from cs_core import recordclass

INDENT_STEP = 2
STEM_WIDTH = INDENT_STEP - 1
VERTICAL = "\u2502"
THIS_AND_MORE = "\u251c"
JUST_THIS = "\u2514"
STEM = "\u2500"


@recordclass.define
class TreeNode:
    left: str  # parent ("(base)" for none)
    right: str  # this node
    notes: list[str] = recordclass.field(factory=list)


def select_root(nodes: list[TreeNode]) -> str:
    """A parent that is nobody's child, preferring the one with the fewest children.

    Go iterates a map here, so ties are broken randomly there; we take the first seen.
    """
    children: dict[str, list[str]] = {}
    are_children = {node.right for node in nodes}
    for node in nodes:
        children.setdefault(node.left, []).append(node.right)
    favorite = ""
    for left, kids in children.items():
        if left in are_children:
            continue
        if favorite == "" or len(kids) < len(children[favorite]):
            favorite = left
    return favorite


def _subtree(root: str, nodes: list[TreeNode], indent: int, continued: list[int],
             lines: list[str]) -> list[TreeNode]:
    leftovers = [n for n in nodes if n.left != root]
    kids = [n for n in nodes if n.left == root]
    for i, child in enumerate(kids):
        prefix = [" "] * indent
        for column in continued:
            prefix[column] = VERTICAL
        istring = "".join(prefix)
        sub = list(continued)
        header, note_header = JUST_THIS, " "
        if i < len(kids) - 1:
            sub.append(indent)
            header, note_header = THIS_AND_MORE, VERTICAL
        lines.append(f"{istring}{header}{STEM * STEM_WIDTH}{child.right}\n")
        lines += [f"{istring}{note_header}{' ' * STEM_WIDTH}{note}\n" for note in child.notes]
        leftovers = _subtree(child.right, leftovers, indent + INDENT_STEP, sub, lines)
    return leftovers


def render_tree(nodes: list[TreeNode]) -> str:
    lines: list[str] = []
    while nodes:
        root = select_root(nodes)
        lines.append(f"{root}\n")
        before = len(nodes)
        nodes = _subtree(root, nodes, 0, [], lines)
        if len(nodes) == before:
            break
    return "".join(lines)
