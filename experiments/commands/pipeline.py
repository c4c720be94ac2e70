"""`dreamgym pipeline`: collect -> tokenizer -> dynamics (bundle) -> world-model evaluation ->
policies in the dream -> real-env scores -> report.md, resumable stage by stage."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from experiments.arg_types import positive_int
from experiments.pipeline_stages import STAGE_NAMES

NAME = "pipeline"
HELP = (
    "Run a whole experiment from a config: collect, train the world model, evaluate it, train "
    "policies in the dream, score them in the real env, write report.md (resumable)."
)
EXPECTED_ERRORS = (ValueError, OSError, LookupError, FloatingPointError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        help="config file, or a shipped config's name (experiments/configs/pipelines/), e.g. "
        "doorkey-cpu; optional with --resume-dir",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        help="run folder (default: the experiment's newest unfinished run, else a new "
        "runs/<experiment>/<time>/); a new or empty folder, or an earlier run, which resumes",
    )
    where.add_argument("--resume-dir", help="run folder of an earlier run to continue")
    where.add_argument(
        "--new", action="store_true", help="start a new run folder even if one is unfinished"
    )
    parser.add_argument(
        "--from",
        dest="start",
        choices=STAGE_NAMES,
        help="rerun this stage and every later one",
    )
    parser.add_argument("--device", help="torch device for evaluation, dreams and SB3 agents")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch")


def execute(config: dict[str, Any], run_dir: Path, start: str | None = None) -> bool:
    """Run the pipeline; on a failed stage print which one and why, and return False."""
    from experiments.pipeline import StageFailed, run_pipeline

    print(f"pipeline {config['experiment']} ({config['env']}): {run_dir}", flush=True)
    try:
        run_pipeline(config, run_dir, start, log=lambda line: print(line, flush=True))
    except StageFailed as failed:
        if not isinstance(failed.error, EXPECTED_ERRORS):
            traceback.print_exception(failed.error)
        print(f"error: {failed}", file=sys.stderr)
        print(
            f"the outputs of earlier stages are kept in {run_dir}; fix the cause (in CONFIG or "
            f"{run_dir / 'config.json'}) and continue: dreamgym pipeline [CONFIG] --resume-dir "
            f"{run_dir}",
            file=sys.stderr,
        )
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from experiments.pipeline_report import summary_tables
    from experiments.pipeline_runs import prepare

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config, run_dir = prepare(args.config, args.out, args.resume_dir, args.device, new=args.new)
    if not execute(config, run_dir, args.start):
        return 1
    print(f"\n{summary_tables(run_dir)}\n\nreport: {run_dir / 'report.md'}")
    return 0
