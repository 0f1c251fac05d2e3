"""storage.conf and environment handling, as the Go library reads them."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from cs_core.config import StoreOptions, load_config_file, parse_id_map, resolve_cli_options
from cs_core.errors import ConfigError
from cs_core.model import IDMap

CONF = """
[storage]
driver = "overlay"
runroot = "/run/x"
graphroot = "/var/lib/x"
transient_store = true

[storage.options]
additionalimagestores = ["/ro/one", "/ro/two"]
pull_options = {enable_partial_images = "true", use_hard_links = "false"}
remap-uids = "0:100000:65536"
auto-userns-max-size = 4096

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
mount_program = "/usr/bin/fuse-overlayfs"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STORAGE_DRIVER", "STORAGE_OPTS", "CONTAINERS_STORAGE_CONF"):
        monkeypatch.delenv(var, raising=False)


def test_full_file(tmp_path: Path) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(CONF)
    opts = load_config_file(str(conf))
    assert (opts.driver_name, opts.run_root, opts.graph_root) == ("overlay", "/run/x", "/var/lib/x")
    assert opts.transient_store
    assert opts.driver_options == [
        "overlay.imagestore=/ro/one", "overlay.imagestore=/ro/two",
        "overlay.mount_program=/usr/bin/fuse-overlayfs", "overlay.mountopt=nodev,metacopy=on",
    ]
    assert opts.pull_options == {"enable_partial_images": "true", "use_hard_links": "false"}
    assert opts.uid_map == [IDMap(0, 100000, 65536)]
    assert opts.auto_ns_max_size == 4096 and opts.auto_ns_min_size == 1024


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(CONF)
    monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    monkeypatch.setenv("STORAGE_OPTS", "vfs.ignore_chown_errors=true")
    opts = load_config_file(str(conf))
    assert opts.driver_name == "vfs"
    assert opts.driver_options == ["vfs.ignore_chown_errors=true"]
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    assert StoreOptions.load_default(rootless=False).config_file == str(conf)


def test_driver_tables_per_driver(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text('[storage]\ndriver = "btrfs"\n[storage.options.btrfs]\nsize = "1G"\n')
    assert load_config_file(str(conf)).driver_options == ["btrfs.size=1G"]
    conf.write_text('[storage]\ndriver = "btrfs"\n[storage.options.btrfs]\nsize = "1G"\nmin_space = "10M"\n')
    assert load_config_file(str(conf)).driver_options == ["btrfs.min_space=10M"]
    conf.write_text('[storage]\ndriver = "vfs"\n[storage.options.vfs]\nignore_chown_errors = "true"\n')
    assert load_config_file(str(conf)).driver_options == ["vfs.ignore_chown_errors=true"]
    conf.write_text('[storage]\ndriver = "overlay2"\n')
    assert load_config_file(str(conf)).driver_name == "overlay"


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    opts = load_config_file(str(tmp_path / "nope.conf"))
    assert opts.driver_name == "" and opts.driver_options == []


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text('[storage]\ndriver = "vfs"\nforce_mask = 0700\n')
    with pytest.raises(ConfigError) as info:
        load_config_file(str(conf))
    assert str(conf) in str(info.value) and "line 3" in str(info.value)
    conf.write_text('[storage]\ndriver = 5\n')
    with pytest.raises(ConfigError, match="driver"):
        load_config_file(str(conf))


def test_imagestore_must_differ_from_graphroot(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text('[storage]\ngraphroot = "/g"\nimagestore = "/g"\n')
    with pytest.raises(ConfigError, match="imagestore"):
        load_config_file(str(conf))


def test_cli_flags_bypass_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(CONF)
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    assert resolve_cli_options().driver_name == "overlay"
    opts = resolve_cli_options(graph_root=str(tmp_path / "g"))
    assert opts.driver_name == "" and opts.driver_options == []
    assert opts.run_root == "/run/x"  # the missing root still comes from the defaults


def test_rootful_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "none.conf"))
    opts = StoreOptions.load_default(rootless=False)
    assert opts.graph_root == "/var/lib/containers/storage"
    assert opts.run_root == "/run/containers/storage"


def test_rootless_defaults_as_unprivileged_user(tmp_path: Path) -> None:
    from cs_core.testing import require_privileged

    require_privileged("switching to an unprivileged user needs root")
    user = pwd.getpwnam("nobody")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    # Import as root (the interpreter and packages may live in root-only paths; tomllib is
    # imported when a storage.conf is read, as the vendor one is here), then drop to the
    # unprivileged user before the defaults are computed.
    code = (
        "import os, tomllib; from cs_core.config import StoreOptions; "
        f"os.setgroups([]); os.setgid({user.pw_gid}); os.setuid({user.pw_uid}); "
        "o = StoreOptions.load_default(); print(o.graph_root); print(o.run_root)"
    )
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run")}
    env.pop("XDG_DATA_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == f"{home}/.local/share/containers/storage"
    assert out[1] == f"{home}/run/containers"


def test_rootless_defaults_inside_the_unshare_namespace(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Root of a user namespace that --unshare made for UID 4321: still that user's storage.
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "4321")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    opts = StoreOptions.load_default()
    assert opts.config_file == f"{tmp_path}/.config/containers/storage.conf"
    assert opts.graph_root == f"{tmp_path}/.local/share/containers/storage"
    assert opts.run_root == f"{tmp_path}/run/containers"


def test_parse_id_map_errors() -> None:
    assert parse_id_map("0:1000:1:1:100000:65536", "x") == [IDMap(0, 1000, 1), IDMap(1, 100000, 65536)]
    with pytest.raises(ConfigError, match="malformed"):
        parse_id_map("0:1000", "uidmap")


def test_a_cli_run_reads_storage_conf_once(tmp_path: Path) -> None:
    """The flags' defaults and the store come from one reading of the file."""
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/g"\nrunroot = "{tmp_path}/r"\n'
                    '[storage.options.vfs]\nignore_chown_errors = "true"\n')
    code = (
        "import sys\n"
        "opened = []\n"
        f"sys.addaudithook(lambda event, args: opened.append(args[0]) if event == 'open' and "
        f"str(args[0]) == {str(conf)!r} else None)\n"
        "from cs_core.cli.main import run\n"
        "code = run(['layers'])\n"
        "print(code, len(opened))\n"
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split()[-2:] == ["0", "1"], done.stdout + done.stderr
    assert (tmp_path / "g" / "vfs").is_dir()


@pytest.mark.parametrize("driver", ["overlay2", "vfs"])
def test_storage_conf_warnings_are_logged_as_go_logs_them(tmp_path: Path, driver: str) -> None:
    """Keys Go does not know, and the overlay2 alias, are warned about on stderr (logrus's
    text format) when storage.conf gives the flags' defaults; not when flags replace it."""
    import re

    from cs_core.testing.gocli import go_cli_path
    from cs_core.testing.loopfs import unmount_under

    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "{driver}"\ngraphroot = "{tmp_path}/g"\n'
                    f'runroot = "{tmp_path}/r"\nbogus = 1\n[storage.options]\nnothere = "x"\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    ours = [sys.executable, "-m", "cs_core"]

    def stderr(argv: list[str], *flags: str) -> list[str]:
        done = subprocess.run([*argv, *flags, "layers"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [re.sub(r'^time="[^"]+" ', "", line) for line in done.stderr.splitlines()]

    try:
        go = stderr([go_cli_path()])
        mine = stderr(ours)
        flagged = stderr(ours, "-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"))
    finally:
        unmount_under(tmp_path)  # the overlay driver mounts its home privately
    assert go[0] == ('level=warning msg="Failed to decode the keys [\\"storage.bogus\\" '
                     f'\\"storage.options.nothere\\"] from \\"{conf}\\""')
    assert len(go) == (2 if driver == "overlay2" else 1)
    assert mine == go
    assert flagged == []
