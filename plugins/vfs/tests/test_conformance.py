"""vfs passes the driver conformance suite."""

from cs_core.testing.conformance import GraphDriverConformance


class TestVfsConformance(GraphDriverConformance):
    driver_name = "vfs"
