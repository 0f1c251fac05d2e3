"""CLI tests (a package so test modules can share the parity script and fixtures)."""
