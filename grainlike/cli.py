"""The ``grainlike`` command: the only place that reads argv, the environment and files."""

from __future__ import annotations

import argparse
import errno
import importlib
import inspect
import json
import logging
import math
import os
import runpy
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, cast

import attrs

from . import __version__
from ._exceptions import AuthenticationError, ConfigError, GrainlikeError
from .wire import DEFAULT_MAX_FRAME

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]

#: What binding a --listen address can fail with that the address itself is to blame for.
_ADDRESS_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _address(text: str, option: str, *, any_port: bool = False) -> str:
    """``text`` when it is ``HOST:PORT`` (port 0 too for a listening address)."""
    from .wire import parse_address

    try:
        _, port = parse_address(text)
    except ConfigError:
        port = -1
    if not (0 if any_port else 1) <= port:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:4242")
    return text


def _resources(text: str | None, option: str = "--resources") -> str | None:
    """``text`` after checking it parses as a capacity, so that a typo stops us early."""
    from .resource import parse_resources

    if text is not None:
        try:
            parse_resources(text, capacity=True)
        except GrainlikeError as error:
            raise ConfigError(f"{option} {error}") from None
    return text


def _import_modules(names: list[str] | None) -> None:
    """Import each ``--import`` module, e.g. one that registers a custom kind."""
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -c "import MODULE"` would find it
    for name in names or ():
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"--import {name}: {error}") from None


def _ask(address: str, call: Callable[..., Any], *args: Any) -> Any:
    """``trio.run(call, address, *args)``: a client call of the dispatcher at ``address`` (the
    dial turns an unreachable or refusing dispatcher into one ``GrainlikeError``)."""
    import trio

    return trio.run(call, address, *args)


def _finite(value: Any) -> Any:
    """``value`` with infinities as ``null``: JSON has no ``Infinity``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _cmd_detect(args: argparse.Namespace) -> int:
    from .resource._units import format_gb
    from .worker import describe_node, detect_capacity

    _import_modules(args.imports)
    capacity = detect_capacity(override=_resources(args.resources), scratch=args.scratch)
    info = describe_node(scratch=args.scratch)
    for note in info.notes:
        print(f"note: {note}", file=sys.stderr)
    scratch = info.scratch
    assert scratch is not None
    if args.json:
        stat = _finite(capacity.stat())
        where = {
            "root": str(scratch.root),
            "source": scratch.source,
            "free": scratch.free_kib / 2**20,
            "headroom": scratch.headroom_kib / 2**20,
        }
        report = {"capacity": str(capacity), "available": stat, "scratch": where}
        print(json.dumps(report, allow_nan=False))
    else:
        print(capacity)
        free, kept = format_gb(scratch.free_kib / 2**20), format_gb(scratch.headroom_kib / 2**20)
        print(f"scratch: {scratch.root} ({free} free, {kept} kept back)", file=sys.stderr)
    return 0


def _load_main(script: str) -> Callable[..., Any]:
    path = Path(script)
    if not path.is_file():
        raise ConfigError(f"{script}: no such script")
    sys.path.insert(0, str(path.resolve().parent))
    namespace = runpy.run_path(str(path), run_name="__grainlike__")
    main = namespace.get("main")
    if main is None or not inspect.iscoroutinefunction(main):
        raise ConfigError(f"{script}: define `async def main()` for grainlike run to call")
    return cast(Callable[..., Any], main)


def _pools(values: list[str] | None) -> str | None:
    return ",".join(values) if values else None


def _key(key_file: str | None) -> bytes:
    """The shared key: ``--key-file``, else ``GRAINLIKE_KEY``, else the local key file."""
    from ._session import default_key
    from .wire import load_key

    return load_key(key_file) if key_file is not None else default_key()


def _cmd_run(args: argparse.Namespace) -> int:
    from . import run

    main = _load_main(args.script)
    sys.argv = [args.script, *args.script_args]
    if args.listen is not None:
        _address(args.listen, "--listen", any_port=True)
    options: dict[str, Any] = {
        "resources": _resources(args.resources),
        "local": not args.no_local,
        "listen": args.listen,
        "pools": _resources(_pools(args.pool), "--pool"),
        "events": args.events,
        "progress": sys.stderr.isatty() if args.progress is None else args.progress,
        "enforce_memory": args.enforce_memory,
        "scratch": args.scratch,
        "stats": args.stats if args.stats is not None else os.environ.get("GRAINLIKE_STATS"),
    }
    if options["stats"] is None:
        del options["stats"]
    options.update(_given(args, max_retries="max_retries", no_worker_grace="no_worker_grace"))
    if args.journal is not None:
        options.update(journal=args.journal, rerun=args.rerun)
    elif args.rerun:
        raise ConfigError("--rerun needs --journal PATH: without a journal everything runs anyway")
    if args.listen is not None:
        options["key"] = _key(args.key_file)
        options.update(_given(args, unsatisfiable_grace="grace"))
        options["max_frame"] = args.max_frame
        options["tls"] = _tls_server(args)
    elif args.tls is not None or args.tls_cert is not None:
        flag = "--tls" if args.tls is not None else "--tls-cert"
        raise ConfigError(f"{flag} needs --listen: TLS protects connections from workers")
    failures: list[tuple[Exception, TracebackType | None]] = []

    async def user_main() -> Any:
        # What main raises is the user's (exit 1, with its traceback); what fails before or
        # around it is grainlike's, and a usage error there is one line (exit 2).
        if args.listen is not None:  # the port it chose, for workers, when it was 0
            from ._session import current_session

            print(f"grainlike run: listening on {current_session().address}", file=sys.stderr)
        try:
            return await main()
        except Exception as error:
            # The traceback as it is here, before frames of grainlike's are added above it;
            # without its first frame (this one) it starts in the user's script.
            failures.append((error, error.__traceback__))
            raise

    try:
        run(user_main, **options)
    except BaseException as raised:
        if not failures:
            usage = _usage_error(raised)
            if isinstance(usage, OSError) and usage.errno in _ADDRESS_ERRORS:
                raise ConfigError(f"--listen {args.listen}: {usage.strerror}") from None
            raise
        error, tb = failures[0]
        traceback.print_exception(type(error), error, tb.tb_next if tb else None)
        return 1
    return 0


def _tls_directory(key_file: str | None) -> Path:
    """Where ``--tls auto`` keeps the dispatcher's certificate: next to the key file."""
    from ._session import DEFAULT_KEY_FILE

    return Path(key_file).absolute().parent if key_file is not None else DEFAULT_KEY_FILE.parent


def _tls_server(args: argparse.Namespace) -> Any:
    """``grainlike run``'s TLS context: ``--tls auto``, ``--tls CERT`` or ``--tls-cert``."""
    from .wire import certificate_fingerprint, ensure_self_signed, tls_server_context

    if args.tls is not None and args.tls_cert is not None:
        raise ConfigError("give --tls or --tls-cert, not both")
    if args.tls != "auto":
        cert = args.tls if args.tls is not None else args.tls_cert
        return tls_server_context(cert, args.tls_key) if cert is not None else None
    if args.tls_key is not None:
        raise ConfigError("--tls-key goes with --tls CERT: --tls auto makes its own key")
    cert, key = ensure_self_signed(_tls_directory(args.key_file))
    fingerprint = certificate_fingerprint(cert)
    print(
        f"grainlike run: TLS certificate {cert} ({fingerprint}); workers pin it with --tls auto "
        f"and the same key file, or with --tls-fingerprint {fingerprint}",
        file=sys.stderr,
    )
    return tls_server_context(cert, key)


def _check_one_tls_choice(args: argparse.Namespace) -> None:
    given = [
        flag
        for flag, value in (
            ("--tls", args.tls),
            ("--tls-fingerprint", args.tls_fingerprint),
            ("--tls-ca", args.tls_ca),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigError(
            f"give one of --tls, --tls-fingerprint and --tls-ca, not {' and '.join(given)}"
        )


def _tls_client(args: argparse.Namespace) -> Any:
    """The TLS context of a worker or client: a pinned certificate, or a CA; else none."""
    from .wire import (
        TLS_CERT_NAME,
        certificate_fingerprint,
        tls_client_context,
        tls_client_context_pinned,
    )

    _check_one_tls_choice(args)
    if args.tls_fingerprint is not None:
        return tls_client_context_pinned(args.tls_fingerprint)
    if args.tls_ca is not None:
        return tls_client_context(args.tls_ca)
    if args.tls is None:
        return None
    cert = Path(args.tls)
    if args.tls == "auto":
        cert = _tls_directory(args.key_file) / TLS_CERT_NAME
        if not cert.exists():
            raise ConfigError(
                f"--tls auto: no dispatcher certificate at {cert}; start the dispatcher with "
                "`grainlike run --tls auto` and the same key file first, or pass "
                "--tls-fingerprint"
            )
    return tls_client_context_pinned(certificate_fingerprint(cert))


def _check_worker_names(text: str | None) -> None:
    """A worker offers what others rely on: a name close to a kind's is refused, not guessed.

    Any other unknown name is a counter, as the grammar has it, and the worker says so, since
    a custom kind whose module was not imported (``--import``) would be read the same way.
    """
    from .resource import Counter, near_kind, parse_resources

    if text is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the error below says it better than the warning
        try:
            offered = parse_resources(text, capacity=True)
        except GrainlikeError as error:
            raise ConfigError(f"--resources {error}") from None
    for part in offered.parts():
        if isinstance(part, Counter):
            near = near_kind(part.name)
            if near is not None:
                raise ConfigError(
                    f"--resources {part}: {part.name} is no resource kind; did you mean {near}? "
                    "(a worker takes no counter whose name is this close to a kind's)"
                )
            print(
                f"grainlike worker: {part} is a counter (no kind is named {part.name}; "
                "--import the module that registers one if a kind is meant)",
                file=sys.stderr,
            )


def _cmd_worker(args: argparse.Namespace) -> int:
    import trio

    from ._uplink import serve_remote_worker
    from .worker import WorkerOptions, detect_capacity, overcommitted

    address = _address(args.dispatcher, "dispatcher")
    _import_modules(args.imports)
    _check_worker_names(args.resources)  # parses --resources, naming it in errors
    walltime = _resources(args.walltime and f"wtime:{args.walltime}", "--walltime")
    override = ",".join(part for part in (args.resources, walltime) if part)
    capacity = detect_capacity(override=override or None, scratch=args.scratch)
    warning = overcommitted(capacity)
    if warning is not None:
        print(f"grainlike worker: warning: {warning}", file=sys.stderr)
    options = WorkerOptions(
        name=args.name or "",
        enforce_memory=args.enforce_memory,
        scratch=args.scratch,
        max_frame=args.max_frame,
        **_given(
            args,
            connect_timeout="connect_timeout",
            reconnect_timeout="reconnect_timeout",
            drain_margin="drain_margin",
            exit_margin="exit_margin",
        ),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    reason = trio.run(
        serve_remote_worker,
        address,
        _key(args.key_file),
        capacity,
        options,
        _tls_client(args),
    )
    print(f"grainlike worker: {reason}", file=sys.stderr)
    return 1 if reason.lost else 0


def _cmd_journal(args: argparse.Namespace) -> int:
    from ._journal_report import render_summary
    from .dispatch import summarize_journal

    summary = summarize_journal(args.path)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
    else:
        render_summary(summary, sys.stdout, terminal=sys.stdout.isatty())
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from ._session import DEFAULT_STATS
    from ._stats_report import group_reports, render_stats
    from .dispatch import LearnedLimits

    path = Path(args.stats) if args.stats else DEFAULT_STATS
    if not path.exists():
        raise ConfigError(f"{path}: no learned store there yet (a run with --stats PATH makes one)")
    learned = LearnedLimits.open(path)
    try:
        reports = group_reports(learned)
    finally:
        learned.close()
    if args.json:
        print(json.dumps([report.to_json() for report in reports], indent=1))
    else:
        render_stats(reports, str(path), sys.stdout, terminal=sys.stdout.isatty())
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import trio

    from ._client import query_status, watch_status

    address = _address(args.connect, "--connect")
    key, tls = _key(args.key_file), _tls_client(args)
    if args.watch:
        if args.interval <= 0:
            raise ConfigError(f"--interval {args.interval:g}: must be more than 0 seconds")
        try:
            trio.run(
                lambda: watch_status(address, key, tls, interval=args.interval, count=args.count)
            )
        except* KeyboardInterrupt:  # Ctrl-C is how a watch ends, wherever it lands
            pass
        return 0
    report = _ask(address, query_status, key, tls)
    print(json.dumps(_finite(report.data), indent=1, allow_nan=False) if args.json else report.text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ._report import load_run, summary_line, write_html, write_trace

    model = load_run(args.events)
    output = args.output
    if output is None and args.trace is None:
        output = str(Path(args.events).with_suffix(".html"))
    print(summary_line(model))
    for path, write in ((output, write_html), (args.trace, write_trace)):
        if path is not None:
            print(f"wrote {write(model, path)}")
    return 0


def _cmd_quit(args: argparse.Namespace) -> int:
    from ._client import quit_workers

    address = _address(args.connect, "--connect")
    matched = _ask(address, quit_workers, _key(args.key_file), args.pattern, _tls_client(args))
    print("draining: " + (", ".join(matched) if matched else f"no worker matches {args.pattern!r}"))
    return 0 if matched else 1


def _profile(args: argparse.Namespace) -> Any:
    import attrs

    from .batch import Profile, load_profile

    profile = load_profile(args.profile) if args.profile else Profile()
    system = "pbs" if args.pbs else "slurm"
    profile = attrs.evolve(profile, system=system) if profile.system != system else profile
    tls = _worker_tls_args(args)
    return attrs.evolve(profile, worker_args=(*tls, *profile.worker_args)) if tls else profile


def _worker_tls_args(args: argparse.Namespace) -> tuple[str, ...]:
    """How the jobs' workers trust the dispatcher: as ``grainlike up`` itself does."""
    _check_one_tls_choice(args)
    if args.tls_fingerprint is not None:
        return ("--tls-fingerprint", args.tls_fingerprint)
    if args.tls_ca is not None:
        return ("--tls-ca", os.path.abspath(args.tls_ca))
    if args.tls is not None:
        # With auto, a job reads the certificate next to the key file it is given, as up does.
        return ("--tls", args.tls if args.tls == "auto" else os.path.abspath(args.tls))
    return ()


def _job_key(args: argparse.Namespace, *, write: bool) -> tuple[bytes | None, Path, str]:
    """The key the dispatcher uses, the file the jobs read it from, and where it came from.

    The key is found as the dispatcher finds its own (``--key-file``, else ``GRAINLIKE_KEY``,
    else the local key file).  A key from the environment goes into a file of mode 0600 in the
    job-state directory (written only with ``write``): a job script names a file, never a key.
    """
    from ._session import DEFAULT_KEY_FILE
    from .batch import job_key_file, write_job_key
    from .wire import KEY_ENV, ensure_local_key, load_key, parse_key

    if args.key_file is not None:
        return load_key(args.key_file), Path(args.key_file), f"--key-file {args.key_file}"
    text = os.environ.get(KEY_ENV)
    if text is not None:
        key = parse_key(text, source=f"${KEY_ENV}")
        if write:
            return key, write_job_key(args.dispatcher, key), f"${KEY_ENV}"
        return key, job_key_file(args.dispatcher), f"${KEY_ENV}"
    if write:
        return ensure_local_key(DEFAULT_KEY_FILE), DEFAULT_KEY_FILE, str(DEFAULT_KEY_FILE)
    return None, DEFAULT_KEY_FILE, str(DEFAULT_KEY_FILE)


def _check_dispatcher_key(dispatcher: str, key: bytes, source: str) -> None:
    """Refuse to submit jobs whose workers the dispatcher would refuse; a dispatcher that is
    not up yet is fine (the workers keep trying to reach it)."""
    import trio

    from ._client import query_status

    async def probe(address: str, key: bytes) -> None:
        with trio.fail_after(10):
            await query_status(address, key)

    try:
        _ask(dispatcher, probe, key)
    except AuthenticationError:
        raise ConfigError(
            f"the dispatcher at {dispatcher} refuses the key from {source}: its workers would "
            "be refused too; give `grainlike up` the dispatcher's key"
        ) from None
    except (GrainlikeError, trio.TooSlowError) as error:
        print(f"grainlike up: note: {error}; the workers will keep trying", file=sys.stderr)


def _cmd_up(args: argparse.Namespace) -> int:
    from ._scale import autoscale, start_jobs
    from .batch import render_script

    profile = _profile(args)
    dispatcher = _address(args.dispatcher, "--dispatcher")
    if args.dry:
        _, key_file, _ = _job_key(args, write=False)
        print(render_script(profile, dispatcher=dispatcher, key_file=str(key_file)), end="")
        return 0
    key, key_file, source = _job_key(args, write=True)
    assert key is not None
    if args.max is None:
        _check_dispatcher_key(dispatcher, key, source)
        for job_id in start_jobs(profile, dispatcher, key_file, args.n):
            print(job_id)
        return 0
    import trio

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    minimum = args.min if args.min is not None else 0
    tls = _tls_client(args)
    reason = trio.run(
        lambda: autoscale(
            profile,
            dispatcher,
            key,
            key_file,
            minimum,
            args.max,
            tls=tls,
            **_given(args, period="period"),
        )
    )
    print(f"grainlike up: {reason}", file=sys.stderr)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from ._scale import stop_jobs

    dispatcher = _address(args.dispatcher, "--dispatcher")
    key = None if args.no_drain else _key(args.key_file)
    tls = None if args.no_drain else _tls_client(args)
    cancelled = stop_jobs(dispatcher, key, tls=tls, **_given(args, drain_timeout="drain_timeout"))
    print("cancelled: " + (", ".join(cancelled) if cancelled else "no recorded worker jobs"))
    return 0


def _tls_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls",
        metavar="auto|CERT",
        help="connect over TLS, trusting exactly the dispatcher's certificate: auto reads it "
        "from next to the key file (as `grainlike run --tls auto` made it), or this file",
    )
    parser.add_argument(
        "--tls-fingerprint",
        metavar="SHA256:...",
        help="connect over TLS, trusting exactly the certificate with this fingerprint",
    )
    parser.add_argument(
        "--tls-ca", help="connect over TLS, verifying the dispatcher's certificate with this CA"
    )


_SCRATCH_HELP = "where Disk tasks get their directories (its free space is the disk offered)"


#: Both sides of a connection say the largest frame they take; each sends at most the other's.
_MAX_FRAME_HELP = "the largest frame in bytes this side accepts (default 64 MiB)"


def _given(args: argparse.Namespace, **flags: str) -> dict[str, Any]:
    """The options the user gave, by the library's names (``option="flag_dest"``): one left
    out keeps the library's default, which the library alone owns."""
    return {
        name: getattr(args, flag) for name, flag in flags.items() if getattr(args, flag) is not None
    }


def _default(owner: Any, name: str) -> Any:
    """The library's default of ``name``: a field of the attrs class, or a parameter of the
    function, ``owner`` (for the command line's help)."""
    if attrs.has(owner):
        return attrs.fields_dict(owner)[name].default
    return inspect.signature(owner).parameters[name].default


def _parser() -> argparse.ArgumentParser:
    from ._scale import autoscale, stop_jobs
    from .dispatch import DispatcherConfig
    from .worker import WorkerOptions

    parser = argparse.ArgumentParser(
        prog="grainlike", description="A resource-typed task scheduler for Python."
    )
    parser.add_argument("--version", action="version", version=f"grainlike {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    imports = argparse.ArgumentParser(add_help=False)
    imports.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        help="import MODULE first, e.g. one that registers a custom kind (repeatable)",
    )

    detect = commands.add_parser(
        "detect", parents=[imports], help="print the capacity a worker here would advertise"
    )
    detect.add_argument("--resources", help="override detection per kind, e.g. cores:1,gpu:0")
    detect.add_argument("--json", action="store_true", help="print JSON instead of shorthand")
    detect.add_argument("--scratch", metavar="DIR", help=_SCRATCH_HELP)
    detect.set_defaults(handler=_cmd_detect)

    run = commands.add_parser(
        "run",
        help="run a script's `async def main()` under a dispatcher",
        epilog="Arguments after `--` go to the script (in sys.argv).",
    )
    run.add_argument("script", help="a Python file defining `async def main()`")
    run.add_argument("--resources", help="the embedded worker's capacity, per kind")
    run.add_argument("--listen", metavar="HOST:PORT", help="also accept remote workers here")
    run.add_argument("--no-local", action="store_true", help="run no embedded worker")
    run.add_argument("--pool", action="append", metavar="NAME:N", help="a cluster-wide counter")
    run.add_argument(
        "--max-retries",
        type=int,
        help=f"retries after lost workers (default {_default(DispatcherConfig, 'max_retries')})",
    )
    run.add_argument(
        "--grace",
        type=float,
        help="seconds before an unsatisfiable request fails "
        f"(default {_default(DispatcherConfig, 'unsatisfiable_grace'):g})",
    )
    run.add_argument(
        "--no-worker-grace",
        type=float,
        metavar="SECONDS",
        help="seconds with no worker connected at all before queued tasks fail "
        "(default: wait for workers)",
    )
    run.add_argument("--events", metavar="FILE", help="write every event as a JSON line here")
    run.add_argument("--stats", metavar="FILE", help="the learned store (learned time limits)")
    run.add_argument(
        "--journal", metavar="FILE", help="keep a SQLite journal; a rerun skips recorded successes"
    )
    run.add_argument("--rerun", action="store_true", help="with --journal: run everything again")
    run.add_argument("--key-file", help="shared key file for remote workers")
    run.add_argument(
        "--enforce-memory",
        action="store_true",
        help="kill processes over Memory (a group request always is)",
    )
    run.add_argument("--scratch", metavar="DIR", help=_SCRATCH_HELP)
    run.add_argument(
        "--tls",
        metavar="auto|CERT",
        help="serve workers over TLS: auto makes a self-signed certificate next to the key "
        "file (workers pin it), or a certificate chain (PEM)",
    )
    run.add_argument("--tls-cert", help="the same as --tls CERT")
    run.add_argument("--tls-key", help="the certificate's private key, if not in CERT")
    run.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help=_MAX_FRAME_HELP)
    progress = run.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None)
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    run.set_defaults(handler=_cmd_run)

    worker = commands.add_parser(
        "worker", parents=[imports], help="join a dispatcher and run its tasks"
    )
    worker.add_argument("dispatcher", metavar="HOST:PORT", help="where the dispatcher listens")
    worker.add_argument(
        "--resources", help="override detection per kind, e.g. cores:4,token:bigmem"
    )
    worker.add_argument("--name", help="the worker's id (made unique by the dispatcher)")
    worker.add_argument(
        "--key-file", help="shared key file (else GRAINLIKE_KEY, else the local key)"
    )
    worker.add_argument("--walltime", help="remaining walltime, e.g. 2h (else from the batch job)")
    worker.add_argument(
        "--connect-timeout",
        type=float,
        help=f"seconds to keep trying (default {_default(WorkerOptions, 'connect_timeout'):g})",
    )
    worker.add_argument(
        "--reconnect-timeout",
        type=float,
        help="seconds to keep trying to reach a lost dispatcher again (0: leave at once; "
        f"default {_default(WorkerOptions, 'reconnect_timeout'):g})",
    )
    worker.add_argument(
        "--enforce-memory",
        action="store_true",
        help="kill processes over Memory (a group request always is)",
    )
    worker.add_argument("--scratch", metavar="DIR", help=_SCRATCH_HELP)
    worker.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help=_MAX_FRAME_HELP)
    worker.add_argument(
        "--drain-margin",
        type=float,
        help="stop taking tasks this many seconds before the walltime ends "
        f"(default {_default(WorkerOptions, 'drain_margin'):g})",
    )
    worker.add_argument(
        "--exit-margin",
        type=float,
        help="leave this many seconds before the walltime ends, whatever runs "
        f"(default {_default(WorkerOptions, 'exit_margin'):g})",
    )
    _tls_client_arguments(worker)
    worker.set_defaults(handler=_cmd_worker)

    up = commands.add_parser("up", help="start workers as batch jobs (Slurm or PBS)")
    system = up.add_mutually_exclusive_group(required=True)
    system.add_argument("--slurm", action="store_true", help="submit with sbatch")
    system.add_argument("--pbs", action="store_true", help="submit with qsub")
    up.add_argument("-n", type=int, default=1, help="how many worker jobs to submit")
    up.add_argument("--min", type=int, help="autoscale: keep at least this many while work fits")
    up.add_argument("--max", type=int, help="autoscale: at most this many worker jobs")
    up.add_argument(
        "--period",
        type=float,
        help=f"autoscale: seconds between looks (default {_default(autoscale, 'period'):g})",
    )
    up.add_argument("--profile", help="a TOML site profile (see docs/cluster.md)")
    up.add_argument(
        "--dispatcher", required=True, metavar="HOST:PORT", help="where workers connect"
    )
    up.add_argument("--key-file", help="shared key file the jobs read (mode 0600)")
    up.add_argument("--dry", action="store_true", help="print the batch script, submit nothing")
    _tls_client_arguments(up)
    up.set_defaults(handler=_cmd_up)

    down = commands.add_parser("down", help="drain and cancel the worker jobs `up` started")
    down.add_argument("--dispatcher", required=True, metavar="HOST:PORT", help="their dispatcher")
    down.add_argument("--key-file", help="shared key file")
    down.add_argument("--no-drain", action="store_true", help="cancel at once, without draining")
    down.add_argument(
        "--drain-timeout",
        type=float,
        help=f"seconds to wait for drain (default {_default(stop_jobs, 'drain_timeout'):g})",
    )
    _tls_client_arguments(down)
    down.set_defaults(handler=_cmd_down)

    journal = commands.add_parser(
        "journal", help="summarise a run's journal: tasks per state, failures, per function"
    )
    journal.add_argument("path", metavar="PATH", help="the journal (grainlike run --journal)")
    journal.add_argument("--json", action="store_true", help="print JSON")
    journal.set_defaults(handler=_cmd_journal)

    stats = commands.add_parser(
        "stats",
        help="show what the learned store knows per group: runs, time, cores, memory, labels",
    )
    stats.add_argument(
        "--stats", metavar="FILE", help="the learned store (default ~/.local/state/grainlike)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=_cmd_stats)

    report = commands.add_parser(
        "report",
        help="draw a run's event log: an HTML timeline report, a Chrome trace",
        epilog="With neither -o nor --trace, writes EVENTS with the suffix .html.",
    )
    report.add_argument("events", metavar="EVENTS", help="the event log of `run --events`")
    report.add_argument("-o", "--output", metavar="HTML", help="write the HTML report here")
    report.add_argument("--trace", metavar="JSON", help="write a Chrome trace (Perfetto) here")
    report.set_defaults(handler=_cmd_report)

    for command, text in (
        ("status", "show workers, tasks and why tasks wait"),
        ("quit", "drain workers whose id matches PATTERN"),
    ):
        sub = commands.add_parser(command, help=text)
        if command == "quit":
            sub.add_argument(
                "pattern", metavar="PATTERN", help="a glob over worker ids, e.g. 'job-*'"
            )
        sub.add_argument("--connect", required=True, metavar="HOST:PORT", help="the dispatcher")
        sub.add_argument("--key-file", help="shared key file")
        _tls_client_arguments(sub)
        if command == "status":
            sub.add_argument("--json", action="store_true", help="print JSON")
            sub.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
            sub.add_argument(
                "--interval", type=float, default=1.0, help="seconds between redraws (--watch)"
            )
            sub.add_argument("--count", type=int, help="stop after this many redraws (--watch)")
        sub.set_defaults(handler=_cmd_status if command == "status" else _cmd_quit)
    return parser


def _usage_error(error: BaseException) -> BaseException | None:
    """The error a user can fix that ``error`` is (or a group holds alone), else ``None``."""
    import trio

    if isinstance(error, BaseExceptionGroup):
        leaves = [e for e in error.exceptions if not isinstance(e, trio.Cancelled)]
        return _usage_error(leaves[0]) if len(leaves) == 1 else None
    # An OSError here is about the user's files or addresses (a port in use, a missing events
    # directory): what the user's own code raised never gets this far (`grainlike run`).
    return error if isinstance(error, GrainlikeError | OSError) else None


@contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Show grainlike's own warnings (e.g. a typo in --resources) as one line each."""
    package = str(Path(__file__).resolve().parent)
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if str(Path(filename).resolve()).startswith(package):
            print(f"grainlike {command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``grainlike`` command line; returns the exit status.

    0: done; 1: the script's ``main`` raised (its traceback is printed) or, for ``quit``, no
    worker matched; 2: a usage error, printed as one line naming the bad value.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in words:  # what follows is the script's, not ours
        split = words.index("--")
        words, script_args = words[:split], words[split + 1 :]
    args = _parser().parse_args(words)
    args.script_args = script_args
    handler: Command = args.handler
    with _one_line_warnings(args.command):
        try:
            return handler(args)
        except KeyboardInterrupt:
            print(f"grainlike {args.command}: interrupted", file=sys.stderr)
            return 130
        except BaseException as error:
            usage = _usage_error(error)
            if usage is None:
                raise
            print(f"grainlike {args.command}: {usage}", file=sys.stderr)
            return 2
