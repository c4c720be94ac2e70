"""`dreamgym compare`: the same actions in a real env and its dream, side by side."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "compare"
HELP = "Run one action sequence in a real env and in a dream env from the same start frame."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("real_id", help="real env id, e.g. LaneSim-v0")
    parser.add_argument("dream_id", help="dream env id, e.g. Dream-League-v0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps", type=positive_int, default=32, help="steps to compare (default 32)"
    )
    parser.add_argument(
        "--policy", default="expert", help="policy acting in the real env: expert, random, noisy"
    )
    parser.add_argument("--bundle", help="bundle for the dream env (default: the shipped one)")
    parser.add_argument("--out", default="compare.mp4", help="side-by-side video (real | dream)")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import numpy as np
    import torch
    from tqdm import tqdm

    import envs  # noqa: F401  (registers the ids)
    from data_collection.policies import make_policy
    from envs.dream import DreamEnv
    from experiments.videos import write_video
    from world_models.metrics import psnr

    real = gym.make(args.real_id, render_mode="rgb_array")
    dream = gym.make(args.dream_id, **({"bundle": args.bundle} if args.bundle else {}))
    if not isinstance(dream.unwrapped, DreamEnv):
        raise ValueError(f"{args.dream_id} is not a dream env (Dream-...); compare needs one")
    for what in ("observation_space", "action_space"):
        if getattr(real, what) != getattr(dream, what):
            raise ValueError(
                f"{args.real_id}'s {what} is {getattr(real, what)} but {args.dream_id}'s is "
                f"{getattr(dream, what)}: they do not model each other"
            )
    policy = make_policy(args.policy, args.real_id)
    obs, _ = real.reset(seed=args.seed)
    policy.reset(real, args.seed)
    dream_obs, _ = dream.reset(seed=args.seed, options={"frames": obs[None]})
    pairs, scores = [np.concatenate([obs, dream_obs], axis=1)], []
    for _ in tqdm(range(args.steps), desc="compared steps", unit="step"):
        action = policy.act(obs)
        obs, _, term, trunc, _ = real.step(action)
        dream_obs, _, dream_term, dream_trunc, _ = dream.step(action)
        pairs.append(np.concatenate([obs, dream_obs], axis=1))
        scores.append(
            psnr(torch.from_numpy(dream_obs)[None, None], torch.from_numpy(obs)[None, None]).item()
        )
        if term or trunc or dream_term or dream_trunc:
            break
    path = write_video(np.stack(pairs), args.out, fps=10)
    print("step  PSNR (dB)")
    for i, score in enumerate(scores, 1):
        print(f"{i:4d}  {score:6.2f}")
    print(f"mean PSNR over {len(scores)} steps: {np.mean(scores):.2f} dB")
    print(f"video (real | dream): {path}")
    return 0
