"""The vfs graph driver: every layer is a complete directory tree."""
