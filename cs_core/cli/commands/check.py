"""check: report (and with --repair, remove) damaged layers, images and containers."""

from __future__ import annotations

import datetime as _dt
import re
from typing import TYPE_CHECKING

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.output import describe, emit_json, err, out

if TYPE_CHECKING:
    from cs_core.store.check import CheckReport

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> _dt.timedelta | None:
    """Go's ``time.ParseDuration`` (``24h``, ``1h30m``, ``1.5s``, ``0``); None if malformed."""
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return _dt.timedelta(0)
    pos, seconds = 0, 0.0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            return None
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body:
        return None
    return _dt.timedelta(seconds=sign * seconds)


def _print_report(report: CheckReport) -> None:
    out("".join(f"{line}\n" for line in report.lines()))


@command("check", "Check storage consistency", options_help="[options [...]]", max_args=0)
@option("--quick", "-q", is_flag=True, help="Perform only quick checks")
@option("--repair", "-r", is_flag=True, help="Remove damaged images and layers")
@option("--force", "-f", is_flag=True, help="Remove damaged containers")
@option("--max", "-m", "max_age", default="24h",
              help="Maximum allowed age for unreferenced layers")
@json_option
def check(env: Env, args: tuple[str, ...], quick: bool, repair: bool, force: bool, max_age: str,
          json_output: bool) -> int:
    from cs_core.store.check import CheckOptions, RepairOptions

    age = parse_duration(max_age)
    if age is None:
        # Go's check.go takes --max as a string and returns time.ParseDuration's error (exit 1).
        err(f'time: invalid duration "{max_age}"\n')
        return 1
    store = env.store()
    try:
        options = CheckOptions.most() if quick else CheckOptions.everything()
        options.layer_unreferenced_maximum_age = age
        report = store.check(options)
        if json_output:
            emit_json(report.to_go_json())
        else:
            _print_report(report)
        if not (repair or force):
            if report.empty():
                return 0
            counts = [len(p) for _, p in report.sections()]
            err("{} layer errors, {} read-only layer errors, {} image errors, "
                "{} read-only image errors, {} container errors\n".format(*counts))
            return 1
        failures = store.repair(report, RepairOptions(remove_containers=force))
        if failures:
            if json_output:
                emit_json([{} for _ in failures])  # Go encodes error values as {}
            else:
                err("".join(f"{describe(e)}\n" for e in failures))
            err(f"{describe(failures[0])}\n")  # Go returns errs[0] too; main prints it again
            return 1
        if report.ro_layers or report.ro_images or (report.containers and not force):
            summary = (f"{len(report.ro_layers)} read-only layer errors, "
                       f"{len(report.ro_images)} read-only image errors")
            if not force:
                summary += f", {len(report.containers)} container errors"
            err(summary + "\n")
            return 1
        return 0
    finally:
        # As Go's check does, leave nothing mounted behind.
        store.shutdown(True)
