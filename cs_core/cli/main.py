"""Entry point: Go-style argument parsing and dispatch to the declared commands.

Built-in commands run without importing click (``command.Command`` is plain data); click is
loaded only for plugin commands and the full command list (``cs_core.cli.clickview``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from cs_core import lazylog
from cs_core.cli import commands
from cs_core.cli.app import GLOBAL_OPTIONS, HELP_OPTION
from cs_core.cli.command import UNLIMITED, Command, Env, InitError
from cs_core.cli.mflag import PROG, Flag, FlagError, FlagSet, HelpRequested
from cs_core.cli.output import ReaderGone, describe, err, go_list, out
from cs_core.errors import StorageError
from cs_core.goformat import go_quote
from cs_core.userns import rootless

if TYPE_CHECKING:
    import click

    from cs_core.config import StoreOptions

# The Go CLI lists commands in registration order: its source files' alphabetical order.
ORDER = [
    "check", "config", "container", "list-container-data", "get-container-data",
    "get-container-data-size", "get-container-data-digest", "set-container-data",
    "get-container-dir", "get-container-run-dir", "container-parent-owners", "containers", "copy",
    "create-layer", "import-layer", "create-image", "create-container", "create-storage-layer",
    "dedup", "delete", "delete-layer", "delete-image", "delete-container", "changes", "diffsize",
    "export-image",
    "diff", "applydiff", "applydiff-using-staging-dir", "exists", "gc", "image", "list-image-data",
    "get-image-data", "get-image-data-size", "get-image-data-digest", "set-image-data",
    "get-image-dir", "get-image-run-dir", "images", "images-by-digest", "import-image", "layer",
    "layer-parent-owners", "list-layer-data", "get-layer-data", "set-layer-data", "layers",
    "storage-layers", "metadata", "set-metadata", "mount", "unmount", "mounted", "get-names",
    "add-names", "set-names", "remove-names", "plugins", "shutdown", "status", "unshare", "version",
    "wipe",
]

_plugins_loaded = False


def load_plugin_commands() -> None:
    """Let installed plugins add commands (after the built-ins, and only when needed)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from cs_core.cli.app import cli
    from cs_core.drivers.plugins import default_registry

    builtin = commands.all_builtins()
    try:
        default_registry().hooks.register_commands(cli)
    except Exception as exc:  # a broken plugin must not break the CLI
        err(f"warning: a plugin failed to add commands: {describe(exc)}\n")
    cli.commands.update(builtin)  # built-ins win over plugins that try to shadow them


def ordered_commands() -> list[click.Command]:
    """Every command, built-in and plugin, as click commands, in the Go CLI's order."""
    from cs_core.cli.app import cli

    rank = {name: i for i, name in enumerate(ORDER)}
    everything = {**cli.commands, **commands.all_builtins()}
    return sorted(everything.values(), key=lambda c: (rank.get(c.name or "", len(ORDER)), c.name))


def find_command(name: str) -> Command | click.Command | None:
    """The built-in or (already loaded) plugin command ``name`` or with alias ``name``."""
    found = commands.builtin(name)
    if found is not None:
        return found
    if "cs_core.cli.clickview" not in sys.modules:
        return None  # nothing built the click group, so no plugin added a command yet
    from cs_core.cli.clickview import GoCommand, built_group

    group = built_group()
    for cmd in group.commands.values() if group is not None else ():
        if cmd.name == name or (isinstance(cmd, GoCommand) and name in cmd.aliases):
            return cmd
    return None


ROOT_FLAGS = ("graph", "run", "storage_driver", "storage_opt")


def config_defaults() -> StoreOptions | None:
    """storage.conf's options, whose roots, driver and driver options Go shows as the flags'
    defaults when none of them was given before the command name. Read once per run: the
    store is opened from these."""
    from cs_core.config import StoreOptions

    try:
        return StoreOptions.load_default()
    except Exception:
        return None  # Go ignores this error here; opening the store reports it


def flag_defaults(opts: StoreOptions) -> dict[str, Any]:
    return {"graph": opts.graph_root, "run": opts.run_root, "storage_driver": opts.driver_name,
            "storage_opt": list(opts.driver_options)}


def global_flags() -> list[Flag]:
    return [Flag.from_option(o) for o in GLOBAL_OPTIONS]


def command_flags(cmd: Command) -> list[Flag]:
    return [Flag.from_option(p) for p in cmd.params]


def top_usage(fs: FlagSet, to_stdout: bool) -> None:
    load_plugin_commands()
    text = "Usage: containers-storage command [options [...]]\n\nCommands:\n\n"
    for cmd in ordered_commands():
        text += f"  {cmd.name:<30}{cmd.short_help or cmd.help or ''}\n"
    out(text + "\nOptions:\n")
    (out if to_stdout else err)(fs.format_defaults())


def command_usage(name: str, cmd: Command, fs: FlagSet) -> None:
    out(f"Usage: containers-storage {name} {cmd.options_help}\n\n{cmd.help}\n\nOptions:\n")
    err(fs.format_defaults())


def _rfc3339(when: float) -> str:
    """Go's ``time.RFC3339`` in local time: ``Z`` for UTC, else ``+hh:mm``."""
    local = time.localtime(when)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign, minutes = ("-", -offset // 60) if offset < 0 else ("+", offset // 60)
        zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def logfmt_line(level: str, message: str, when: float | None = None) -> str:
    """One line in logrus's text format (stderr is no terminal), as the Go CLI logs."""
    # logrus quotes a message with spaces as Go's %q does.
    stamp = _rfc3339(time.time() if when is None else when)
    return f'time="{stamp}" level={level} msg={go_quote(message)}'


def _install_logging(debug: bool) -> None:
    import logging

    class LogfmtFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return logfmt_line(record.levelname.lower(), record.getMessage(), record.created)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.ERROR)


def setup_logging(debug: bool) -> None:
    """Configure logging as the Go CLI logs: at once with ``--debug``, else when something
    first imports logging (a run that logs nothing never loads it: ``cs_core.lazylog``)."""
    lazylog.configure(lambda: _install_logging(debug), now=debug)


def run(argv: Sequence[str]) -> int:
    parsed = parse_global_flags(argv)
    if isinstance(parsed, int):
        return parsed
    name, args, values = parsed
    cmd = find_command(name)
    if cmd is None:
        load_plugin_commands()
        cmd = find_command(name)
    if cmd is None:
        out(f"{name}: unrecognized command.\n")
        return 1
    values.pop("help", None)
    conf = config_defaults() if not any(values[k] for k in ROOT_FLAGS) else None
    for warning in conf.warnings if conf else ():
        # Go logs these while reading storage.conf for the flags' defaults, before the
        # command sets the log level to errors only.
        err(logfmt_line("warning", warning) + "\n")
    defaults = flag_defaults(conf) if conf else None
    if defaults:
        values.update(defaults)
    spec = cmd if isinstance(cmd, Command) else getattr(cmd, "spec", None)
    if isinstance(spec, Command):
        return run_builtin(name, spec, args, values, defaults, conf)
    if values.get("unshare") and rootless.needs_reexec():
        return reexec_in_user_namespace(values)
    return run_click_command(name, cmd, args, values, conf)  # type: ignore[arg-type]


def parse_global_flags(argv: Sequence[str]) -> int | tuple[str, list[str], dict[str, Any]]:
    """The command name, its arguments and the global flags before it; or the exit status
    after printing the usage."""
    if not argv:
        # Go prints this usage before defining --help, so --help is not listed.
        top_usage(FlagSet(PROG, global_flags()), False)
        return 1
    top = FlagSet(PROG, [*global_flags(), Flag.from_option(HELP_OPTION)])
    try:
        rest = top.parse(argv)
    except HelpRequested as exc:
        top_usage(top, False)
        out(f"{exc} while parsing arguments (1)\n")
        top_usage(top, False)
        return 1
    except FlagError as exc:
        err("".join(top.errors))
        out(f"{exc} while parsing arguments (1)\n")
        top_usage(top, False)
        return 1
    if top.values.get("help"):
        top_usage(top, True)
        return 0
    if not rest:
        top_usage(top, False)
        return 1
    return rest[0], rest[1:], dict(top.values)


def run_builtin(name: str, cmd: Command, args: list[str], values: dict[str, Any],
                defaults: dict[str, Any] | None, conf: StoreOptions | None) -> int:
    """A built-in command: its flags parsed as mflag does, its argument count checked."""
    own = command_flags(cmd)
    fs = FlagSet(name, [*global_flags(), *own], values)
    try:
        args = fs.parse(args)
    except HelpRequested:
        command_usage(name, cmd, fs)
        return 125
    except FlagError:
        err("".join(fs.errors))
        return 125
    if cmd.min_args and len(args) < cmd.min_args:
        out(f"{name}: more arguments required.\n")
        command_usage(name, cmd, fs)
        return 1
    if cmd.max_args != UNLIMITED and len(args) > cmd.max_args:
        out(f"{name}: too many arguments ({go_list(args)}).\n")
        command_usage(name, cmd, fs)
        return 1
    final = {f.dest: fs.values[f.dest] for f in global_flags()}
    if final.get("unshare") and rootless.needs_reexec():
        return reexec_in_user_namespace(final)  # as Go: after the argument checks, before the store
    if defaults and all(final[k] == defaults[k] for k in ROOT_FLAGS):
        # Nothing overrode storage.conf: let the resolver use all of it, not just four keys.
        final.update({k: type(defaults[k])() for k in ROOT_FLAGS})
    env = Env(final, conf)
    kwargs = {f.dest: fs.values[f.dest] for f in own}
    return invoke(env, name, cmd.needs_store, lambda: cmd.callback(env, args=args, **kwargs))


def reexec_in_user_namespace(values: dict[str, Any]) -> int:
    from cs_core.userns import unshare

    setup_logging(bool(values.get("debug")))
    try:
        return unshare.reexec_self()
    except (StorageError, OSError) as exc:
        err(f"{describe(exc)}\n")
        return 1


def run_click_command(name: str, cmd: click.Command, args: list[str], values: dict[str, Any],
                      conf: StoreOptions | None = None) -> int:
    """A plugin's plain click command: click parses its arguments."""
    import click

    env = Env(values, conf)

    def call() -> Any:
        with click.Context(cmd, obj=env, info_name=name):
            try:
                return cmd.main(args=args, prog_name=f"{PROG} {name}", standalone_mode=False,
                                obj=env)
            except click.UsageError as exc:
                exc.show()
                return 125
            except click.ClickException as exc:
                exc.show()
                return exc.exit_code

    return invoke(env, name, False, call)


def invoke(env: Env, name: str, needs_store: bool, call: Callable[[], Any]) -> int:
    setup_logging(env.debug)
    if env.debug:
        import logging

        logging.debug("Root: %s", env.values.get("graph"))
        logging.debug("Run Root: %s", env.values.get("run"))
        logging.debug("Driver Name: %s", env.values.get("storage_driver"))
        logging.debug("Driver Options: %s", go_list(env.values.get("storage_opt") or ()))
    try:
        if needs_store:
            env.store()
        return int(call() or 0)
    except InitError as exc:
        out(f"error initializing: {exc}\n")
        return 1
    except StorageError as exc:
        err(f"{exc}\n")
        return exc.exit_code
    except BrokenPipeError:
        raise  # a write that bypassed out()/err(): still the reader leaving, not our failure
    except OSError as exc:
        err(f"{describe(exc)}\n")
        return 1
    except KeyboardInterrupt:
        err("interrupted\n")
        return 130
    except Exception as exc:
        if env.debug:
            import traceback

            err(traceback.format_exc())
        else:
            err(f"{name}: internal error: {type(exc).__name__}: {exc} (run with --debug for details)\n")
        return 1
    finally:
        try:
            env.close()
        except Exception as exc:
            err(f"{describe(exc)}\n")


def main(argv: Sequence[str] | None = None) -> None:
    """The console script. With ``argv`` (a caller in the same process) it ends by raising
    SystemExit; run as the program (no ``argv``), it skips the interpreter's tear-down."""
    try:
        code = run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except commands.CommandLoadError as exc:  # a broken installation: say which module
        err(f"{PROG}: {exc}\n")
        code = 1
    except (ReaderGone, BrokenPipeError):
        _die_of_sigpipe()
    if argv is None:
        _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> NoReturn:
    """End the process as ``sys.exit`` would, minus freeing every module and object.

    That tear-down is ~31M instructions, 8 % of a light command, and does nothing a finished
    command needs: the exit handlers still run (logging's flush, temporary directories'
    cleanup, coverage) and the standard streams are flushed. Bookkeeping never waits for a
    finalizer (every write is synced and renamed before the command returns), and files are
    closed by ``with`` blocks. While another thread is alive the normal exit waits for it.
    """
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        _die_of_sigpipe()
    os._exit(code)


def _die_of_sigpipe() -> NoReturn:
    """End as the Go CLI does when its reader goes away (``| head``): killed by SIGPIPE,
    silently (the shell shows 141). Python ignores SIGPIPE, so restore its default first;
    os._exit, should the signal be blocked, skips the exit-time flush into the closed pipe."""
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)


if __name__ == "__main__":
    main()
