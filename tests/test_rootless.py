"""One rootless rule (cs_core.userns.rootless, Go ``unshare.IsRootless``) for paths, auto user
namespaces, --unshare and overlay, checked in real namespaces and capability sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cs_core.testing import require_privileged, requires_command
from cs_core.userns.rootless import is_rootless, rootless_uid, uses_per_user_storage

# Every module that decides something by rootlessness, asked in the same process.
PROBE = """
import json
from cs_core import config
from cs_core.userns import rootless
from cs_core.cli import app
from cs_overlay import fsinfo
print(json.dumps({"rootless": rootless.is_rootless(), "per_user": config.is_rootless(),
                  "overlay": fsinfo.rootless(), "unshare_default": app._ROOTLESS,
                  "uid": rootless.rootless_uid()}))
"""
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("_CONTAINERS_")}


def _probe(*wrapper: str, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run([*wrapper, sys.executable, "-c", PROBE], capture_output=True,
                          text=True, timeout=60, env={**CLEAN_ENV, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_real_root_is_not_rootless() -> None:
    require_privileged()
    assert _probe() == {"rootless": False, "per_user": False, "overlay": False,
                        "unshare_default": False, "uid": 0}


def test_root_of_an_unconfigured_user_namespace_is_rootless_with_system_paths() -> None:
    # `unshare -r`: UID 0 mapped to one host ID. Go's IsRootless sees the partial uid_map,
    # while DefaultStoreOptions keeps the system's storage for UID 0.
    require_privileged()
    requires_command("unshare")
    assert _probe("unshare", "--user", "--map-root-user") == {
        "rootless": True, "per_user": False, "overlay": True, "unshare_default": True, "uid": 0}


def test_root_without_cap_sys_admin_is_rootless() -> None:
    require_privileged()
    requires_command("setpriv")
    assert _probe("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin")["rootless"]


def test_root_of_the_unshare_namespace_is_the_user() -> None:
    # What --unshare hands its child (tests/userns/test_rootless_cli.py runs the real thing).
    require_privileged()
    env = {"_CONTAINERS_USERNS_CONFIGURED": "done", "_CONTAINERS_ROOTLESS_UID": "4321"}
    assert _probe(env=env) == {"rootless": True, "per_user": True, "overlay": True,
                               "unshare_default": True, "uid": 4321}


def test_environment_rules_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_CONTAINERS_USERNS_CONFIGURED", raising=False)
    monkeypatch.delenv("_CONTAINERS_ROOTLESS_UID", raising=False)
    assert rootless_uid() == os.geteuid()
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "not a number")
    assert rootless_uid() == os.geteuid()  # ignored, not an error
    monkeypatch.setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "0")
    # Configured for root: rootless (Go) but the system's storage.
    assert is_rootless() and not uses_per_user_storage()


def test_the_unshare_command_as_root_does_not_claim_a_namespace() -> None:
    # Root is not re-executed into a namespace, so its children must not think they are in one.
    require_privileged()
    proc = subprocess.run([sys.executable, "-m", "cs_core", "unshare", sys.executable, "-c", PROBE],
                          capture_output=True, text=True, timeout=60, env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rootless"] is False
