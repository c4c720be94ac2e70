#!/usr/bin/env bash
# Dream-League-v0: the exact commands that trained the shipped bundle on CPU
# (2 cores, one torch thread per job). Run from the repository root; outputs go to runs/.
set -euo pipefail
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-data}
export OMP_NUM_THREADS=1
D=.venv/bin/dreamgym
$D collect --env LaneSim-v0 --policy noisy --epsilon 0.1 --episodes 40 \
  --dataset-id dreamgym/lanesim-noisy-v0 --seed 1000
$D train-tokenizer --dataset dreamgym/lanesim-noisy-v0 --run-dir runs/lane-tok --kind cnn \
  --perceptual none --set base_channels=32 --set max_channels=128 --set blocks_per_stage=0 \
  --set num_downsamples=4 --set latent_dim=64 \
  --steps 4000 --batch-size 32 --seq-len 1 --lr 2e-3 --warmup 50 --ckpt-every 100
$D train-dynamics --dataset dreamgym/lanesim-noisy-v0 --tokenizer runs/lane-tok \
  --run-dir runs/lane-dyn --set dim=128 --set depth=4 --set num_heads=4 --set num_kv_heads=2 \
  --set time_attention_every=2 --set context_prob=0.5 --set context_length=16 \
  --steps 3000 --batch-size 8 --seq-len 8 --lr 1e-3 --warmup 100 --ckpt-every 100 --horizon 200
# The shipped dynamics then trained 8,000 more steps from those weights with the flow loss on
# 75% of frames and a uniform weight (flow_share, ramp_weight), which teaches a small model to
# follow its actions far sooner (experiments/bench/action_toy.py); 69 min sharing 2 cores.
$D train-dynamics --dataset dreamgym/lanesim-noisy-v0 --tokenizer runs/lane-dyn/bundle \
  --init-from runs/lane-dyn/bundle --run-dir runs/lane-flow --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set flow_share=0.75 --set ramp_weight=false --steps 8000 \
  --batch-size 8 --seq-len 8 --lr 1e-3 --warmup 100 --ckpt-every 250 --image-every 2500 \
  --horizon 200 --threads 1
# Then 6,000 more at half the learning rate (the shipped weights; 35 min sharing 2 cores).
$D train-dynamics --dataset dreamgym/lanesim-noisy-v0 --tokenizer runs/lane-flow/bundle \
  --init-from runs/lane-flow/bundle --run-dir runs/lane-flow2 --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set flow_share=0.75 --set ramp_weight=false --steps 6000 \
  --batch-size 8 --seq-len 8 --lr 5e-4 --warmup 100 --ckpt-every 250 --image-every 2500 \
  --horizon 200 --threads 1
$D eval-world-model --bundle runs/lane-flow2/bundle --dataset dreamgym/lanesim-noisy-v0 \
  --context 4 --horizon 16 --windows 32 --num-steps 4 64
# The shipped start contexts: 64 windows of 4 real frames from anywhere in the expert's
# episodes, so that 200-step dreams (and imagination) start in the lane, next to the minions,
# rather than at the fountain (a real episode is 1,000 steps; the first gold comes near step 112).
$D collect --env LaneSim-v0 --policy expert --episodes 100 --dataset-id dreamgym/lanesim-expert-v0 \
  --seed 7000
$D export-bundle --tokenizer runs/lane-flow2/bundle --dynamics runs/lane-flow2/bundle \
  --dataset dreamgym/lanesim-expert-v0 --out runs/league-anywhere --contexts 64 \
  --context-length 4 --contexts-from anywhere
# The shipped bundle then reads at most 7 past frames: "context_length": 7 in its config.json's
# dynamics config (it trained on 8-frame windows; no new weights), chosen with
.venv/bin/python -m experiments.bench.paired_eval --dataset dreamgym/lanesim-noisy-v0 envs/bundles/league \
  envs/bundles/league:context_length=7 --seeds 1 2 3 --windows 64
# The shipped decoder since 2026-12-06: the bundle's decoder fine-tuned on 2,048 of its own
# open-loop dreams of the training episodes (then its tokenizer.safetensors copied into
# envs/bundles/league)
$D train-decoder --bundle envs/bundles/league --dataset dreamgym/lanesim-noisy-v0 \
  --run-dir runs/league-decoder --steps 6000 --batch-size 4 --lr 1e-4 --warmup 100 --threads 1 \
  --image-every 1000 --ckpt-every 500
# Since 2026-12-06 each shortcut sub-step is told the finest step size (sample_d "finest" in the
# dynamics config, no new weights), chosen with
.venv/bin/python -m experiments.bench.paired_eval --dataset dreamgym/lanesim-noisy-v0 envs/bundles/league \
  'envs/bundles/league:sample_d="finest"' --seeds 1 2 3 --windows 64 --threads 1
