"""`dreamgym export-bundle`: pack a tokenizer, a dynamics model and start contexts."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.arg_types import positive_int

NAME = "export-bundle"
HELP = "Pack a trained tokenizer + dynamics model + real start contexts into a bundle folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer", required=True, help="tokenizer, bundle or train-tokenizer run folder"
    )
    parser.add_argument(
        "--dynamics",
        required=True,
        help="dynamics folder, or a train-dynamics run folder (its latest checkpoint is used)",
    )
    parser.add_argument("--dataset", required=True, help="dataset to take start contexts from")
    parser.add_argument("--data-dir", help="Minari datasets root (default: MINARI_DATASETS_PATH)")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument(
        "--contexts", type=positive_int, default=64, help="number of start contexts"
    )
    parser.add_argument(
        "--context-length", type=positive_int, default=1, help="frames per start context"
    )
    parser.add_argument(
        "--contexts-from",
        choices=("start", "anywhere"),
        default="start",
        help="start: the first steps of episodes (the real env's start states); anywhere: "
        "windows from every point of the episodes (for a dream horizon shorter than a real "
        "episode, e.g. LaneSim: imagination then starts where the action is)",
    )
    parser.add_argument("--horizon", type=positive_int, default=200, help="dream episode length")
    parser.add_argument(
        "--num-steps",
        type=positive_int,
        help="shortcut steps K per frame (default: the dynamics model's num_sampling_steps)",
    )
    parser.add_argument(
        "--copy-threshold",
        type=float,
        help="static-pixel copy: imagined frames keep the previous frame's pixels where the "
        "decoded frame changed by at most this much (pixels in [0, 1]; e.g. 0.1 for MiniGrid; "
        "default: off)",
    )


def _replaceable(out: Path) -> bool:
    """Whether `out` may be replaced: an empty folder, or a bundle (its config says so)."""
    from world_models.bundle import FORMAT
    from world_models.checkpoint import read_json

    if not out.is_dir():
        return False
    if not any(out.iterdir()):
        return True
    try:
        config = read_json(out / "config.json")
    except ValueError:  # missing or corrupt: not a bundle
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def run(args: argparse.Namespace) -> int:
    import shutil

    import torch

    from data_collection.sequence_view import SequenceView
    from envs.dream import dream_world_model, load_dream_bundle
    from world_models.atomic import replace_dir
    from world_models.bundle import BundleError, save_bundle, start_contexts
    from world_models.runs import load_trained

    out = Path(args.out)
    if out.exists() and not _replaceable(out):
        raise FileExistsError(
            f"--out {out} exists and is not a bundle; it is only ever replaced when it is one: "
            "choose a new folder"
        )
    view = SequenceView(args.dataset, data_dir=args.data_dir)
    view.require_images("a bundle")
    dynamics = load_trained(args.dynamics, "dynamics")
    draft = out.with_name(f".{out.name}.draft")  # checked as a dream env loads it, then moved
    shutil.rmtree(draft, ignore_errors=True)  # left by a killed export
    save_bundle(
        draft,
        env_id=view.env_id,
        observation_space=view.observation_space,
        action_space=view.action_space,
        models={"tokenizer": load_trained(args.tokenizer, "tokenizer"), "dynamics": dynamics},
        contexts=start_contexts(
            view, args.contexts, args.context_length, anywhere=args.contexts_from == "anywhere"
        ),
        sampling={
            "num_steps": args.num_steps or dynamics.config.num_sampling_steps,
            **({} if args.copy_threshold is None else {"copy_threshold": args.copy_threshold}),
        },
        horizon=args.horizon,
    )
    try:
        dream_world_model(load_dream_bundle(draft, torch.device("cpu")))
    except ValueError as err:  # BundleError is one
        shutil.rmtree(draft)
        raise BundleError(f"no bundle written to {out}: {err}") from err
    replace_dir(draft, out)
    print(f"bundle: {out}")
    return 0
