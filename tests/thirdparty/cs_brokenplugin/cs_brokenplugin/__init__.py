"""A cs_core plugin that cannot be imported (test fixture)."""
