"""Transport references (``oci:DIR[:REF]`` …), image names and platforms, as skopeo spells them."""

from __future__ import annotations

import platform as _platform
import re

import attrs

from cs_core.errors import StorageError


class ImageError(StorageError):
    """An image, archive or reference that cannot be imported or exported (one line)."""

    message = "invalid image"

    def __str__(self) -> str:
        return self.detail or self.message


TRANSPORTS = ("oci", "oci-archive", "docker-archive")


@attrs.frozen
class TransportRef:
    """A parsed ``TRANSPORT:PATH[:REF]``: ``ref`` is an OCI ref name, a docker-archive
    name, or ``@N`` (the Nth image of a docker-archive)."""

    transport: str
    path: str
    ref: str = ""

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.ref}" if self.ref else "")


def parse_transport_ref(text: str) -> TransportRef:
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise ImageError(f"invalid image reference {text!r}: expected one of "
                         + ", ".join(f"{t}:PATH[:REF]" for t in TRANSPORTS))
    if not rest:
        raise ImageError(f"invalid image reference {text!r}: no path")
    # As c/image: the path ends at the first colon; a docker-archive ref may hold one more
    # (``name:tag``), so only the first colon splits.
    path, _, ref = rest.partition(":")
    if not path:
        raise ImageError(f"invalid image reference {text!r}: no path")
    return TransportRef(transport, path, ref)


_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*"
                     r"[a-zA-Z0-9])?)*(?::[0-9]+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def normalize_name(name: str) -> str:
    """A name as podman stores it: ``busybox`` → ``docker.io/library/busybox:latest``
    (docker/reference ``ParseNormalizedNamed`` + ``TagNameOnly``)."""
    rest, digest = name, ""
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.match(digest):
            raise ImageError(f"invalid image name {name!r}: bad digest")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise ImageError(f"invalid image name {name!r}: bad tag")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
        if not _DOMAIN.match(domain):
            raise ImageError(f"invalid image name {name!r}: bad domain")
    else:
        domain, path = "docker.io", rest
        if "/" not in path:
            path = "library/" + path
    if not path or not all(_COMPONENT.match(part) for part in path.split("/")):
        raise ImageError(f"invalid image name {name!r}: repository names must be lowercase "
                         "letters, digits and separators")
    if not tag and not digest:
        tag = "latest"
    return f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


@attrs.frozen
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def host_platform() -> Platform:
    machine = _platform.machine()
    arch = _ARCHES.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8"}.get(machine, "")
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]")
    return Platform(*parts)
