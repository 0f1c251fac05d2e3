"""Test support for cs_core and driver packages: fixtures and the driver conformance suite.

Installed as the pytest plugin ``cs_core`` (entry point ``pytest11``), so any driver
package's tests can subclass :class:`cs_core.testing.conformance.GraphDriverConformance`.
"""

from cs_core.testing.gocli import go_cli_path
from cs_core.testing.privileged import require_privileged, requires_command

__all__ = ["go_cli_path", "require_privileged", "requires_command"]
