"""The conformance suite, run against the installed ``tiny`` driver."""

from cs_core.testing.conformance import GraphDriverConformance


class TestTiny(GraphDriverConformance):
    driver_name = "tiny"
