"""User namespaces: who we run as and for whom, ID maps, and picking host IDs.

- ``rootless``: whether we run rootless, and for which user (the one rule everything asks).
- ``idmap``: /etc/subuid and /etc/subgid lookups and the CLI's map flags.
- ``idset``: sets of IDs as intervals, the arithmetic of automatic user namespaces.
- ``auto``: automatic user namespaces, the ID ranges a new container gets.
- ``unshare``: running this process again inside a user namespace (``--unshare``).
"""
