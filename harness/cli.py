"""The ``harness`` command: jsonargparse subcommands, one module each under :mod:`harness.commands`.

Only commands that work are registered here; each later command adds one line to ``COMMANDS``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from jsonargparse import ArgumentError, ArgumentParser

from harness import __version__
from harness.commands.arguments import new_parser, study_args
from harness.commands.ls import ls
from harness.commands.run import run, validate
from harness.errors import HarnessError


def _run_parser() -> ArgumentParser:
    p = new_parser(run.__doc__)
    study_args(p)
    p.add_argument("--runs-dir", dest="runs_dir", type=Path, default=Path("runs"), help="root of the run store")
    p.add_argument("--cache-dir", dest="cache_dir", type=Path, default=None,
                   help="stage cache shared across studies (default: RUNS_DIR/.stages or $HARNESS_CACHE_DIR)")
    p.add_argument("--workers", type=int, default=None, help="run N runs at once in a local process pool (N >= 1)")
    p.add_argument("--force", action="store_true", help="recompute runs even when complete")
    p.add_argument("--plain", action="store_true", help="log lines instead of a live display")
    p.add_argument("--no-report", dest="no_report", action="store_true",
                   help="do not build RUNS_DIR/report/ at the end")
    return p


def _validate_parser() -> ArgumentParser:
    p = new_parser(validate.__doc__)
    study_args(p, several=True)
    return p


def _ls_parser() -> ArgumentParser:
    p = new_parser(ls.__doc__)
    p.add_argument("runs_dir", type=Path, nargs="?", default=Path("runs"), help="a runs folder or one study's folder")
    return p


def _eval_parser() -> ArgumentParser:
    from harness.commands.eval import eval_command

    p = new_parser((eval_command.__doc__ or "").split("\n")[0])
    p.add_argument("samples_dir", type=Path, help="folder of .mp4 samples (with sidecar JSON, or named {prompt}-{i}.mp4)")
    p.add_argument("--backend", type=str, default="vbench", help="vbench (its own environment) or weight-free")
    p.add_argument("--dimensions", type=list[str] | None, default=None, help="VBench dimension keys, e.g. [temporal_flickering]")
    p.add_argument("--mode", type=str, default="vbench_standard", help="vbench_standard or custom_input")
    p.add_argument("--output-dir", dest="output_dir", type=Path | None, default=None,
                   help="where results.json goes (with vbench: also the staged videos and its log)")
    p.add_argument("--device", type=str, default="cpu", help="torch device for vbench")
    p.add_argument("--full-info", dest="full_info", type=Path | None, default=None, help="a VBench_full_info.json")
    p.add_argument("--extended-prompts", dest="extended_prompts", type=Path | None, default=None,
                   help="extended prompt list aligned with the suite")
    p.add_argument("--vbench-python", dest="vbench_python", type=Path | None, default=None,
                   help="the vbench environment's python")
    p.add_argument("--timeout-s", dest="timeout_s", type=float | None, default=None,
                   help="stop vbench after this many seconds")
    return p


def _eval(**kwargs) -> int:
    """Score a folder of samples with VBench (its own environment) or the weight-free backend."""
    from harness.commands.eval import eval_command

    return eval_command(**kwargs)


def _report_parser() -> ArgumentParser:
    from harness.commands.report import report

    p = new_parser((report.__doc__ or "").split("\n")[0])
    p.add_argument("runs_dir", type=Path, nargs="?", default=Path("runs"), help="a runs folder or one study's folder")
    p.add_argument("--study", type=str | None, default=None, help="report only this study of the folder")
    return p


def _report(**kwargs) -> int:
    """Write paper-style tables, figures, findings and index.html to RUNS_DIR/report/."""
    from harness.commands.report import report

    return report(**kwargs)


def _sweep_parser() -> ArgumentParser:
    from harness.commands.sweep import sweep_parser

    return sweep_parser()


def _worker_parser() -> ArgumentParser:
    from harness.commands.sweep import worker_parser

    return worker_parser()


def _sweep(**kwargs) -> int:
    """Search a study's `sweep` section with Optuna; every trial is a run in the store."""
    from harness.commands.sweep import sweep

    return sweep(**kwargs)


def _worker(**kwargs) -> int:
    """Join a running sweep from any machine (shared journal or PostgreSQL storage)."""
    from harness.commands.sweep import worker

    return worker(**kwargs)


def _gc_parser() -> ArgumentParser:
    from .commands.gc import gc

    p = new_parser(gc.__doc__)
    p.add_argument("runs_dir", type=Path, nargs="?", default=Path("runs"), help="the runs folder")
    p.add_argument("--cache-dir", dest="cache_dir", type=Path | None, default=None,
                   help="the stage cache (default: RUNS_DIR/.stages or $HARNESS_CACHE_DIR)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="list what would go, with sizes; remove nothing")
    return p


def _gc(**kwargs) -> int:
    """Remove the intermediate checkpoints of finished stages and complete runs (--dry-run: list them)."""
    from .commands.gc import gc

    return gc(**kwargs)


COMMANDS: dict[str, tuple[Callable[[], ArgumentParser], Callable[..., int]]] = {
    "run": (_run_parser, run),
    "validate": (_validate_parser, validate),
    "ls": (_ls_parser, ls),
    "report": (_report_parser, _report),
    "sweep": (_sweep_parser, _sweep),
    "worker": (_worker_parser, _worker),
    "eval": (_eval_parser, _eval),
    "gc": (_gc_parser, _gc),
}


def build_parser() -> ArgumentParser:
    parser = new_parser("Few-step causal video distillation harness.", prog="harness")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subcommands(dest="command")
    for name, (make, fn) in COMMANDS.items():
        sub.add_subcommand(name, make(), help=(fn.__doc__ or "").strip().splitlines()[0])
    return parser


def normalise_options(argv: list[str]) -> list[str]:
    """``--output_dir`` reads as ``--output-dir``: every option is spelled with dashes, and the underscore
    spelling of older releases keeps working without appearing in the help. jsonargparse reserves
    ``--print_config`` for its own config files; ours prints the study."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("HARNESS_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("WANDB_SILENT", "true")
    # Modules a study lists in allow_modules may live in the current folder, as with `python -m`; it goes
    # last on the path, so a folder holding its own `methods/` or `harness/` cannot replace the project's.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return _main(normalise_options(sys.argv[1:] if argv is None else list(argv)))
    except BrokenPipeError:  # `harness ls | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE


def _main(argv: list[str]) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        cfg = parser.parse_args(argv)
    except ArgumentError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    name = cfg.command
    _, fn = COMMANDS[name]
    kwargs = dict(cfg[name].as_dict()) if hasattr(cfg[name], "as_dict") else dict(vars(cfg[name]))
    try:
        code = int(fn(**kwargs) or 0)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.flush()  # a closed pipe shows here, inside main's handler, not at interpreter exit
    return code


if __name__ == "__main__":
    sys.exit(main())
