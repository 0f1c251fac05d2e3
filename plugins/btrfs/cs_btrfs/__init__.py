"""cs-btrfs: the btrfs graph driver for cs_core (subvolumes, snapshots and qgroups via ioctls)."""

__version__ = "0.1.0"
