"""One line per target: a measured ratio, the ratio it must stay under, pass or FAIL.

Shared by the benchmarks ``bench/run`` drives, so the summary reads the same whichever
script measured it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """``ratio`` of ours to ``reference`` must be at most ``target``; None means not measured."""

    workload: str
    ratio: float | None
    target: float
    reference: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.ratio is not None and self.ratio <= self.target

    def line(self) -> str:
        if self.ratio is None:
            return f"{self.workload:<34} {'':>7}   {'':<7} {self.reference:<26} not run {self.note}".rstrip()
        verdict = "pass" if self.passed else "FAIL"
        return (f"{self.workload:<34} {self.ratio:6.2f}x  <= {self.target:<4.2f} {self.reference:<26} "
                f"{verdict} {self.note}").rstrip()


def print_checks(checks: list[Check]) -> None:
    for check in checks:
        print(check.line())
