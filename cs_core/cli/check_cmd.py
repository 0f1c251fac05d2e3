"""The ``check`` command (Go HEAD ``cmd/containers-storage/check.go``): output and exit codes.

Exit 0 when nothing is wrong (or ``-r`` repaired everything it may touch); otherwise 1, with
Go's summary line on stderr. Wire it with ``check_cmd.register(cli)``.
"""

from __future__ import annotations

import datetime as _dt
import re

import click

from cs_core.cli.framework import CommandError, Env, command, emit_json, err, json_option, out

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> _dt.timedelta:
    """Go's ``time.ParseDuration`` (``24h``, ``1h30m``, ``-5m``, ``0``)."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return _dt.timedelta(0)
    if not s:
        raise CommandError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", s[pos:]):
                raise CommandError(f'time: missing unit in duration "{text}"')
            raise CommandError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return _dt.timedelta(seconds=sign * total)


def register(cli: click.Group) -> None:
    """Add ``check`` to the CLI group."""

    @command(cli, "check", "Check storage consistency", max_args=0)
    @json_option
    @click.option("--max", "-m", "max_age", default="24h",
                  help="Maximum allowed age for unreferenced layers")
    @click.option("--repair", "-r", is_flag=True, help="Remove damaged images and layers")
    @click.option("--force", "-f", is_flag=True, help="Remove damaged containers")
    @click.option("--quick", "-q", is_flag=True, help="Perform only quick checks")
    def check(env: Env, args: tuple[str, ...], json_output: bool, max_age: str, repair: bool,
              force: bool, quick: bool) -> int:
        from cs_core.check import CheckOptions, RepairOptions

        repair = repair or force
        store = env.store()
        try:
            options = CheckOptions.most() if quick else CheckOptions.everything()
            if max_age:
                options.layer_unreferenced_maximum_age = parse_duration(max_age)
            report = store.check(options)
            if json_output:
                emit_json(report.to_go_json())
            else:
                out("".join(line + "\n" for line in report.lines()))
            if not repair:
                if not report.empty():
                    raise CommandError(
                        f"{len(report.layers)} layer errors, {len(report.ro_layers)} read-only "
                        f"layer errors, {len(report.images)} image errors, "
                        f"{len(report.ro_images)} read-only image errors, "
                        f"{len(report.containers)} container errors")
                return 0
            failures = store.repair(report, RepairOptions(remove_containers=force))
            if failures:
                if json_output:
                    emit_json([{} for _ in failures])
                else:
                    err("".join(f"{f}\n" for f in failures))
                raise CommandError(str(failures[0]))
            if report.ro_layers or report.ro_images or (not force and report.containers):
                summary = (f"{len(report.ro_layers)} read-only layer errors, "
                           f"{len(report.ro_images)} read-only image errors")
                if not force:
                    summary += f", {len(report.containers)} container errors"
                raise CommandError(summary)
            return 0
        finally:
            # Go shuts the store down (unmounting everything) when check exits.
            try:
                store.shutdown(force=True)
            except Exception as exc:
                err(f"shutdown: {exc}\n")
