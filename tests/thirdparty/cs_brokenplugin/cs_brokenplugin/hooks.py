"""Fails on import, as a plugin with a missing dependency would."""

import cs_brokenplugin_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
