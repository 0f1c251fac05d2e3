"""Built-in commands, one module per family; importing them registers them on ``cli``."""

from __future__ import annotations

import click

from cs_core.cli.app import cli
from cs_core.cli.commands import (  # noqa: F401  (imported for their registrations)
    check,
    containers,
    copy,
    create,
    data,
    dedup,
    delete,
    diff,
    images,
    layers,
    misc,
    mount,
    names,
)

BUILTIN: dict[str, click.Command] = dict(cli.commands)
