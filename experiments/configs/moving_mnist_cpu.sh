#!/usr/bin/env bash
# Dream-MovingMNIST-v0 and the masked video model: the exact commands that trained the shipped
# bundle and the issue-7 model on CPU (2 cores, one torch thread per job). The dense Moving
# MNIST reward keeps the two-hot reward loss near 1, 100x the latent loss, so its scale is
# 0.01. Run from the repository root; outputs go to runs/.
set -euo pipefail
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-data}
export OMP_NUM_THREADS=1
D=.venv/bin/dreamgym
$D collect --env MovingMNIST-v0 --policy noisy --epsilon 0.3 --episodes 400 \
  --dataset-id dreamgym/mnist-mixed-v0 --seed 9000
$D train-tokenizer --dataset dreamgym/mnist-mixed-v0 --run-dir runs/mnist-tok --kind cnn \
  --perceptual none --set base_channels=32 --set max_channels=128 --set blocks_per_stage=0 \
  --set num_downsamples=4 --set latent_dim=32 \
  --steps 2000 --batch-size 32 --seq-len 1 --lr 1e-3 --warmup 100 --ckpt-every 100
$D train-dynamics --dataset dreamgym/mnist-mixed-v0 --tokenizer runs/mnist-tok \
  --run-dir runs/mnist-dyn2 --set dim=128 --set depth=4 --set num_heads=4 --set num_kv_heads=2 \
  --set time_attention_every=2 --set context_prob=0.5 --set context_length=16 \
  --set reward_loss_scale=0.01 --set continue_loss_scale=0.01 \
  --steps 3000 --batch-size 8 --seq-len 8 --lr 1e-3 --warmup 100 --ckpt-every 100 \
  --image-every 500 --horizon 50
# The shipped dynamics then trained 5,000 more steps from those weights with the flow loss on
# 75% of frames and a uniform weight (flow_share, ramp_weight), which teaches a small model to
# follow its actions far sooner (experiments/bench/action_toy.py); 28 min on one core.
$D train-dynamics --dataset dreamgym/mnist-mixed-v0 --tokenizer runs/mnist-dyn2/bundle \
  --init-from runs/mnist-dyn2/bundle --run-dir runs/mnist-flow --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set reward_loss_scale=0.01 --set continue_loss_scale=0.01 \
  --set flow_share=0.75 --set ramp_weight=false --steps 5000 --batch-size 8 --seq-len 8 \
  --lr 1e-3 --warmup 100 --ckpt-every 250 --image-every 2500 --horizon 50 --threads 1
$D eval-world-model --bundle runs/mnist-flow/bundle --dataset dreamgym/mnist-mixed-v0 \
  --context 4 --horizon 16 --windows 32 --num-steps 4 64
# The CoPilot4D-style masked video model, on generated two-digit sequences with ego actions.
$D train-dynamics --kind masked-video --dataset generated --run-dir runs/mnist-mv \
  --steps 3000 --batch-size 16 --seq-len 8 --lr 1e-3 --warmup 100 --ckpt-every 100 \
  --image-every 500 --context-length 8 --horizon 50
# Then trained further from those weights (the README's row): 2,800 steps at lr 5e-4 (stopped
# at 1,600 and continued with --resume), then 2,200 at 3e-4.
$D train-dynamics --kind masked-video --dataset generated --run-dir runs/mnist-mv2 \
  --init-from runs/mnist-mv/bundle --steps 2800 --batch-size 16 --seq-len 8 --lr 5e-4 \
  --warmup 50 --ckpt-every 100 --image-every 1000 --context-length 8 --horizon 50 --threads 1
$D train-dynamics --kind masked-video --dataset generated --run-dir runs/mnist-mv3 \
  --init-from runs/mnist-mv2/bundle --steps 2200 --batch-size 16 --seq-len 8 --lr 3e-4 \
  --warmup 50 --ckpt-every 100 --image-every 1000 --context-length 8 --horizon 50 --threads 1
# Then 4,000 more at 2e-4 (stopped at 3,400, continued with --resume): +0.03 dB, a plateau.
$D train-dynamics --kind masked-video --dataset generated --run-dir runs/mnist-mv4 \
  --init-from runs/mnist-mv3/bundle --steps 4000 --batch-size 16 --seq-len 8 --lr 2e-4 \
  --warmup 50 --ckpt-every 100 --image-every 1000 --context-length 8 --horizon 50 --threads 1
$D eval-video-prediction --model runs/mnist-mv4/bundle --bundle envs/bundles/moving-mnist
# An experiment, not shipped (README, agents): the shipped dynamics trained 4,000 + 1,500 more
# steps on exploratory play (70% random actions), for a reward head that has seen digits far
# apart; PPO in it still learns nothing real (stopped at 51k steps).
$D collect --env MovingMNIST-v0 --policy noisy --epsilon 0.7 --episodes 400 \
  --dataset-id dreamgym/mnist-explore-v0 --seed 19000
DYN=(--set dim=128 --set depth=4 --set num_heads=4 --set num_kv_heads=2
  --set time_attention_every=2 --set context_prob=0.5 --set context_length=16
  --set reward_loss_scale=0.01 --set continue_loss_scale=0.01 --set flow_share=0.75
  --set ramp_weight=false --batch-size 8 --seq-len 8 --ckpt-every 250 --image-every 2000
  --horizon 50 --threads 1)
$D train-dynamics --dataset dreamgym/mnist-explore-v0 --tokenizer envs/bundles/moving-mnist \
  --init-from envs/bundles/moving-mnist --run-dir runs/mnist-explore "${DYN[@]}" \
  --steps 4000 --lr 5e-4 --warmup 100
$D train-dynamics --dataset dreamgym/mnist-explore-v0 --tokenizer envs/bundles/moving-mnist \
  --init-from runs/mnist-explore/bundle --run-dir runs/mnist-heads-all "${DYN[@]}" \
  --steps 1500 --lr 3e-4 --warmup 50
$D eval-world-model --bundle runs/mnist-heads-all/bundle --dataset dreamgym/mnist-explore-v0 \
  --context 4 --horizon 16 --windows 32 --num-steps 4 --perceptual none
$D train-policy --algo ppo --env Dream-MovingMNIST-v0 --bundle runs/mnist-heads-all/bundle \
  --steps 100000 --num-envs 16 --run-dir runs/ppo-mnist-dream-explore --threads 1 \
  --eval-env MovingMNIST-v0 --eval-every 25000 --eval-episodes 10
# The shipped bundle then reads at most 7 past frames: "context_length": 7 in its config.json's
# dynamics config (it trained on 8-frame windows; no new weights), chosen with
.venv/bin/python -m experiments.bench.paired_eval --dataset dreamgym/mnist-mixed-v0 envs/bundles/moving-mnist \
  envs/bundles/moving-mnist:context_length=7 --seeds 1 2 3 --windows 64
# Since 2026-12-06 each shortcut sub-step is told the finest step size (sample_d "finest" in the
# dynamics config, no new weights), chosen with
.venv/bin/python -m experiments.bench.paired_eval --dataset dreamgym/mnist-mixed-v0 envs/bundles/moving-mnist \
  'envs/bundles/moving-mnist:sample_d="finest"' --seeds 1 2 3 --windows 64 --threads 1
