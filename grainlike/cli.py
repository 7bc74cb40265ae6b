"""The ``grainlike`` command: the only place that reads argv, the environment and files."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from ._exceptions import ConfigError, GrainlikeError

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _cmd_detect(args: argparse.Namespace) -> int:
    from .worker import describe_node, detect_capacity

    capacity = detect_capacity(override=args.resources)
    for note in describe_node().notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        stat = {
            label: [None if total == float("inf") else total for total in pair]
            for label, pair in capacity.stat().items()
        }
        print(json.dumps({"capacity": str(capacity), "available": stat}))
    else:
        print(capacity)
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
    options: dict[str, Any] = {
        "resources": args.resources,
        "local": not args.no_local,
        "listen": args.listen,
        "pools": _pools(args.pool),
        "max_retries": args.max_retries,
        "events": args.events,
        "progress": sys.stderr.isatty() if args.progress is None else args.progress,
        "enforce_memory": args.enforce_memory,
        "stats": args.stats if args.stats is not None else os.environ.get("GRAINLIKE_STATS"),
    }
    if options["stats"] is None:
        del options["stats"]
    if args.journal is not None:
        options.update(journal=args.journal, rerun=args.rerun)
    elif args.rerun:
        raise ConfigError("--rerun needs --journal PATH: without a journal everything runs anyway")
    if args.listen is not None:
        options["key"] = _key(args.key_file)
        options["unsatisfiable_grace"] = args.grace
        options["max_frame"] = args.max_frame
        options["tls"] = _tls_server(args)
    elif args.tls is not None or args.tls_cert is not None:
        flag = "--tls" if args.tls is not None else "--tls-cert"
        raise ConfigError(f"{flag} needs --listen: TLS protects connections from workers")
    run(main, **options)
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


def _cmd_worker(args: argparse.Namespace) -> int:
    import trio

    from .worker import WorkerOptions, detect_capacity, serve_worker

    override = ",".join(
        part for part in (args.resources, args.walltime and f"wtime:{args.walltime}") if part
    )
    capacity = detect_capacity(override=override or None)
    options = WorkerOptions(
        name=args.name or "",
        connect_timeout=args.connect_timeout,
        reconnect_timeout=args.reconnect_timeout,
        enforce_memory=args.enforce_memory,
        drain_margin=args.drain_margin,
        exit_margin=args.exit_margin,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    reason = trio.run(
        serve_worker,
        args.dispatcher,
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


def _cmd_status(args: argparse.Namespace) -> int:
    import trio

    from ._client import query_status

    report = trio.run(query_status, args.connect, _key(args.key_file), _tls_client(args))
    print(json.dumps(report.data, indent=1) if args.json else report.text)
    return 0


def _cmd_quit(args: argparse.Namespace) -> int:
    import trio

    from ._client import quit_workers

    matched = trio.run(
        quit_workers, args.connect, _key(args.key_file), args.pattern, _tls_client(args)
    )
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


def _key_file(key_file: str | None) -> Path:
    from ._session import DEFAULT_KEY_FILE, default_key

    if key_file is not None:
        return Path(key_file)
    default_key()  # creates the local key file (mode 0600) on first use
    return DEFAULT_KEY_FILE


def _cmd_up(args: argparse.Namespace) -> int:
    from ._scale import autoscale, start_jobs
    from .batch import render_script

    profile = _profile(args)
    key_file = _key_file(args.key_file)
    if args.dry:
        print(render_script(profile, dispatcher=args.dispatcher, key_file=str(key_file)), end="")
        return 0
    if args.max is not None:
        import trio

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        minimum = args.min if args.min is not None else 0
        tls = _tls_client(args)
        trio.run(
            lambda: autoscale(
                profile,
                args.dispatcher,
                _key(str(key_file)),
                key_file,
                minimum,
                args.max,
                period=args.period,
                tls=tls,
            )
        )
        return 0
    for job_id in start_jobs(profile, args.dispatcher, key_file, args.n):
        print(job_id)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from ._scale import stop_jobs

    key = None if args.no_drain else _key(args.key_file)
    tls = None if args.no_drain else _tls_client(args)
    cancelled = stop_jobs(args.dispatcher, key, drain_timeout=args.drain_timeout, tls=tls)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grainlike", description="A resource-typed task scheduler for Python."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = commands.add_parser("detect", help="print the capacity a worker here would advertise")
    detect.add_argument("--resources", help="override detection per kind, e.g. cores:1,gpu:0")
    detect.add_argument("--json", action="store_true", help="print JSON instead of shorthand")
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
    run.add_argument("--max-retries", type=int, default=3, help="retries after lost workers")
    run.add_argument(
        "--grace", type=float, default=60.0, help="seconds before an unsatisfiable request fails"
    )
    run.add_argument("--events", metavar="FILE", help="write every event as a JSON line here")
    run.add_argument("--stats", metavar="FILE", help="the learned store (learned time limits)")
    run.add_argument(
        "--journal", metavar="FILE", help="keep a SQLite journal; a rerun skips recorded successes"
    )
    run.add_argument("--rerun", action="store_true", help="with --journal: run everything again")
    run.add_argument("--key-file", help="shared key file for remote workers")
    run.add_argument("--enforce-memory", action="store_true", help="kill processes over Memory")
    run.add_argument(
        "--tls",
        metavar="auto|CERT",
        help="serve workers over TLS: auto makes a self-signed certificate next to the key "
        "file (workers pin it), or a certificate chain (PEM)",
    )
    run.add_argument("--tls-cert", help="the same as --tls CERT")
    run.add_argument("--tls-key", help="the certificate's private key, if not in CERT")
    run.add_argument("--max-frame", type=int, default=64 * 2**20, help="largest frame in bytes")
    progress = run.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None)
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    run.set_defaults(handler=_cmd_run)

    worker = commands.add_parser("worker", help="join a dispatcher and run its tasks")
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
        "--connect-timeout", type=float, default=60.0, help="seconds to keep trying"
    )
    worker.add_argument(
        "--reconnect-timeout",
        type=float,
        default=300.0,
        help="seconds to keep trying to reach a lost dispatcher again (0: leave at once)",
    )
    worker.add_argument("--enforce-memory", action="store_true", help="kill processes over Memory")
    worker.add_argument(
        "--drain-margin",
        type=float,
        default=60.0,
        help="stop taking tasks this many seconds before the walltime ends",
    )
    worker.add_argument(
        "--exit-margin",
        type=float,
        default=10.0,
        help="leave this many seconds before the walltime ends, whatever runs",
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
    up.add_argument("--period", type=float, default=10.0, help="autoscale: seconds between looks")
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
    down.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to wait for drain")
    _tls_client_arguments(down)
    down.set_defaults(handler=_cmd_down)

    journal = commands.add_parser(
        "journal", help="summarise a run's journal: tasks per state, failures, per function"
    )
    journal.add_argument("path", metavar="PATH", help="the journal (grainlike run --journal)")
    journal.add_argument("--json", action="store_true", help="print JSON")
    journal.set_defaults(handler=_cmd_journal)

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
        sub.set_defaults(handler=_cmd_status if command == "status" else _cmd_quit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``grainlike`` command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in words:  # what follows is the script's, not ours
        split = words.index("--")
        words, script_args = words[:split], words[split + 1 :]
    args = _parser().parse_args(words)
    args.script_args = script_args
    handler: Command = args.handler
    try:
        return handler(args)
    except GrainlikeError as error:
        print(f"grainlike {args.command}: {error}", file=sys.stderr)
        return 2
