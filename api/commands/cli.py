"""The ``sharpeyes`` command line.

Every subcommand imports what it needs lazily, so ``sharpeyes --help`` is instant and a missing
optional dependency only affects the command that needs it. Deliberate errors
(:class:`pipeline.errors.SharpeyesError`) are printed as one line ``error: …`` with a non-zero exit
status, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sharpeyes.pipeline.errors import ConfigError, SharpeyesError

logger = logging.getLogger("sharpeyes")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


BEIJING = timezone(timedelta(hours=8))


def start_time_ms(text: str) -> int:
    """``--start-time``: an ISO 8601 time as UTC epoch ms; without an offset, Beijing time."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2022-09-25T16:40:00 or …+07:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=BEIJING)
    return round(when.timestamp() * 1000)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    result = analyze_video(
        AnalyzeOptions(
            video=Path(args.video),
            config=Path(args.config) if args.config else None,
            out=Path(args.out) if args.out else None,
            annotate=args.annotate,
            model=args.model,
            analysis_fps=args.fps,
            progress=not args.no_progress,
            deliver=args.deliver,
            phase_udp=args.phase_udp,
            overwrite=args.overwrite,
            start_time_ms=args.start_time,
            structuring=args.structuring,
            faces=args.faces,
        )
    )
    for line in result.summary_lines():
        _out(line)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from sharpeyes.api.commands.demo import demo_clips, run_demo, serve_demo

    out = Path(args.out)
    for line in run_demo(out=out, progress=not args.no_progress):
        _out(line)
    if args.no_serve:
        return EXIT_OK
    _out("\nstarting the live service on the same clips (file-as-live cameras)…")
    return serve_demo(out / "service", demo_clips(out), args.port)


def _cmd_evidence_verify(args: argparse.Namespace) -> int:
    from sharpeyes.pipeline.evidence.verify import main_verify

    # --key, else env SHARPEYES_EVIDENCE_KEY, else the installation key ring (--key-dir);
    # --public-key checks record.sig with an exported public key alone
    return main_verify(
        Path(args.record),
        args.key.encode() if args.key else None,
        key_dir=Path(args.key_dir) if args.key_dir else None,
        public_keys=tuple(Path(p) for p in args.public_key or ()),
        demo=args.demo_key,
    )


def _cmd_viid_server(args: argparse.Namespace) -> int:
    from sharpeyes.api.viid.receiver.server import run_receiver
    from sharpeyes.api.viid.receiver.state import ReceiverConfig

    config = ReceiverConfig(
        accounts={args.user: args.password},
        validate_payloads=not args.no_validate,
        template_path=args.template,
        test_faults=args.test_faults,
    )
    _out(f"GA/T 1400 receiver on http://{args.host}:{args.port}/VIID (user {args.user})")
    run_receiver(args.host, args.port, config)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from sharpeyes.api.commands.run import run_service

    return run_service(Path(args.config), serve_api=False, workers=args.workers)


def _workers(text: str) -> int | str:
    if text == "per-gpu":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("workers must be a number ≥ 1 or 'per-gpu'")
    return n


def _cmd_serve(args: argparse.Namespace) -> int:
    from sharpeyes.api.commands.run import run_service

    return run_service(
        Path(args.config) if args.config else None,
        serve_api=True,
        host=args.host,
        port=args.port,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sharpeyes",
        description="Video analytics for Sharp Eyes and e-police cameras.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from sharpeyes.api.commands import camera_check, signal_check

    signal_check.add_parser(sub)
    camera_check.add_parser(sub)
    a = sub.add_parser("analyze", help="analyse a video file end to end")
    a.add_argument("video", help="video file (MP4, H.264/H.265, …)")
    a.add_argument("--config", help="camera YAML (defaults embedded)")
    a.add_argument(
        "--out", help="output directory (default ./out/<video name>, -2, -3… if that is taken)"
    )
    a.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out (else that is an error)",
    )
    a.add_argument("--annotate", action="store_true", help="also write annotated.mp4")
    a.add_argument("--model", help="detector model name or .onnx path (overrides the config)")
    a.add_argument("--fps", type=float, help="analysis rate (overrides the config)")
    a.add_argument(
        "--structuring",
        action="store_true",
        help="read plates and body colours of vehicles, clothing colours of persons (卡口; "
        "overrides the config's structuring.enabled)",
    )
    a.add_argument(
        "--faces",
        action="store_true",
        help="capture the best face of each person (人脸抓拍; overrides the config's "
        "faces.enabled)",
    )
    a.add_argument(
        "--start-time",
        type=start_time_ms,
        metavar="ISO8601",
        help="when the recording started, e.g. 2022-09-25T16:40:00 (Beijing time unless an "
        "offset is given); default: the file's creation_time tag, else the analysis start",
    )
    a.add_argument("--deliver", help="GA/T 1400 delivery config YAML (enqueue + send)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_argument(
        "--phase-udp",
        metavar="[HOST:]PORT",
        help="listen for external signal phases (JSON datagrams) for groups with source: external",
    )
    a.set_defaults(func=_cmd_analyze)

    d = sub.add_parser("demo", help="run the demo on the sample videos")
    d.add_argument("--out", default="out/demo", help="output directory")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--no-serve", action="store_true", help="analyse only; do not start the service")
    d.add_argument("--port", type=int, default=8080, help="port of the demo service")
    d.set_defaults(func=_cmd_demo)

    from sharpeyes.api.commands import models_cmd

    models_cmd.add_parser(sub)

    from sharpeyes.api.commands import users_cmd

    users_cmd.add_parser(sub)

    from sharpeyes.api.commands import deliver_cmd

    deliver_cmd.add_parser(sub)

    ev = sub.add_parser("evidence", help="evidence tools")
    ev_sub = ev.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    v = ev_sub.add_parser("verify", help="verify an evidence record's keyed hashes")
    v.add_argument("record", help="evidence record directory or its record.json")
    v.add_argument("--key", help="HMAC key (default: env SHARPEYES_EVIDENCE_KEY)")
    v.add_argument("--key-dir", help="installation key ring (default: this user's)")
    v.add_argument(
        "--public-key",
        action="append",
        help="exported <key id>.pub to check record.sig with (repeatable)",
    )
    v.add_argument(
        "--demo-key", action="store_true", help="accept the public demo key (demo output only)"
    )
    v.set_defaults(func=_cmd_evidence_verify)

    r = sub.add_parser("run", help="run all configured cameras until stopped")
    r.add_argument("--config", required=True, help="service YAML")
    r.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="worker processes: N or 'per-gpu' (default: node.workers; 1 = in-process)",
    )
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("serve", help="run the cameras and the REST service")
    s.add_argument("--config", help="service YAML (default: demo config on the sample videos)")
    s.add_argument("--host", help="API address (default: the config's api.host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="API port (default: the config's api.port, 8080)")
    s.set_defaults(func=_cmd_serve)

    vs = sub.add_parser("viid-server", help="run a conformant GA/T 1400 view-library receiver")
    vs.add_argument("--host", default="127.0.0.1")
    vs.add_argument("--port", type=int, default=8090)
    vs.add_argument("--user", default="admin", help="Digest account user name")
    vs.add_argument("--password", default="admin", help="Digest account password")
    vs.add_argument("--template", help="MEGVII rule template JSON (default: the shared copy)")
    vs.add_argument("--no-validate", action="store_true", help="accept payloads unchecked")
    vs.add_argument(
        "--test-faults",
        action="store_true",
        help="expose the /_receiver/* fault-injection endpoints (integration tests only)",
    )
    vs.set_defaults(func=_cmd_viid_server)
    return p


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


VERBOSE_FLAGS = re.compile(r"^(-v+|--verbose)$")


def verbose_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``-v``/``-vv``/``--verbose`` moved to the front, so they work after the
    subcommand too (``sharpeyes analyze X -v``); nothing after ``--`` moves."""
    cut = list(argv).index("--") if "--" in argv else len(argv)
    head, tail = list(argv[:cut]), list(argv[cut:])
    flags = [a for a in head if VERBOSE_FLAGS.match(a)]
    return [*flags, *(a for a in head if not VERBOSE_FLAGS.match(a)), *tail]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(verbose_first(sys.argv[1:] if argv is None else argv))
    _setup_logging(args.verbose)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_USAGE
    except SharpeyesError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except ImportError as e:
        sys.stderr.write(f"error: a component is not installed: {e}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
