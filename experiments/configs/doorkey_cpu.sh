#!/usr/bin/env bash
# Dream-MiniGrid-DoorKey-8x8-v0: the exact commands that trained the shipped bundle on CPU
# (2 cores, one torch thread per job). Run from the repository root; outputs go to runs/.
set -euo pipefail
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-data}
export OMP_NUM_THREADS=1
D=.venv/bin/dreamgym
$D collect --env MiniGridPixels-DoorKey-8x8-v0 --policy noisy --epsilon 0.3 --episodes 1000 \
  --dataset-id dreamgym/doorkey-mixed-v0 --seed 5000
# The shipped tokenizer was stopped after 1,100 of these 2,000 steps (held-out PSNR 42.6 dB);
# train-dynamics then read the run folder's latest checkpoint.
$D train-tokenizer --dataset dreamgym/doorkey-mixed-v0 --run-dir runs/doorkey-tok --kind cnn \
  --perceptual none --set base_channels=32 --set max_channels=128 --set blocks_per_stage=0 \
  --set num_downsamples=4 --set latent_dim=32 \
  --steps 2000 --batch-size 32 --seq-len 1 --lr 1e-3 --warmup 100 --ckpt-every 100
# The shipped dynamics (88 min on one core) read the earlier bundle's tokenizer, the same weights
# (--tokenizer envs/bundles/minigrid-doorkey-8x8).
$D train-dynamics --dataset dreamgym/doorkey-mixed-v0 --tokenizer runs/doorkey-tok \
  --run-dir runs/doorkey-dyn --set dim=128 --set depth=4 --set num_heads=4 --set num_kv_heads=2 \
  --set time_attention_every=2 --set context_prob=0.5 --set context_length=16 \
  --set action_in_latents=true --steps 15000 --batch-size 8 --seq-len 8 --lr 1e-3 --warmup 100 \
  --ckpt-every 250 --image-every 2500 --horizon 100 --threads 1
# The shipped dynamics then trained 9,000 more steps from those weights with the flow loss on
# 75% of frames and a uniform weight (flow_share, ramp_weight), which teaches a small model to
# follow its actions far sooner (experiments/bench/action_toy.py).
$D train-dynamics --dataset dreamgym/doorkey-mixed-v0 --tokenizer runs/doorkey-dyn/bundle \
  --init-from runs/doorkey-dyn/bundle --run-dir runs/doorkey-flow --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set action_in_latents=true --set flow_share=0.75 \
  --set ramp_weight=false --steps 9000 --batch-size 8 --seq-len 8 --lr 1e-3 --warmup 100 \
  --ckpt-every 250 --image-every 2500 --horizon 100 --threads 1
# Then 11,000 more at half the learning rate with a long 16-frame batch every 4th step (74
# minutes sharing the two cores).
$D train-dynamics --dataset dreamgym/doorkey-mixed-v0 --tokenizer runs/doorkey-flow/bundle \
  --init-from runs/doorkey-flow/bundle --run-dir runs/doorkey-flow2 --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set action_in_latents=true --set flow_share=0.75 \
  --set ramp_weight=false --steps 11000 --batch-size 8 --seq-len 8 --long-seq-len 16 \
  --long-every 4 --lr 5e-4 --warmup 100 --ckpt-every 250 --image-every 2500 --horizon 100 \
  --threads 1
# Then 8,000 more (lr 3e-4) and 8,000 more (lr 2e-4) weighting the latent tokens that moved
# since the previous frame 8 to 1 (motion_weight=7; the shipped weights; 50 and 54
# minutes on one core each).
for step in "runs/doorkey-flow2 runs/doorkey-motion 3e-4" "runs/doorkey-motion runs/doorkey-motion2 2e-4"; do
  set -- $step
  $D train-dynamics --dataset dreamgym/doorkey-mixed-v0 --tokenizer "$1/bundle" \
    --init-from "$1/bundle" --run-dir "$2" --set dim=128 --set depth=4 --set num_heads=4 \
    --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
    --set context_length=16 --set action_in_latents=true --set flow_share=0.75 \
    --set ramp_weight=false --set motion_weight=7 --steps 8000 --batch-size 8 --seq-len 8 \
    --long-seq-len 16 --long-every 4 --lr "$3" --warmup 50 --ckpt-every 250 --image-every 4000 \
    --horizon 100 --threads 1
done
$D eval-world-model --bundle runs/doorkey-motion2/bundle --dataset dreamgym/doorkey-mixed-v0 \
  --context 4 --horizon 16 --windows 32 --num-steps 4 64
# Then 5,000 more (lr 2e-4, batch 16) hiding the action of one training frame in ten
# (action_dropout=0.1; 66 minutes on one core), shipped with classifier-free guidance on the
# action (guidance=1, a sampling setting in the bundle's config.json).
$D train-dynamics --dataset dreamgym/doorkey-mixed-v0 --tokenizer runs/doorkey-motion2/bundle \
  --init-from runs/doorkey-motion2/bundle --run-dir runs/dk-cfg --set dim=128 --set depth=4 \
  --set num_heads=4 --set num_kv_heads=2 --set time_attention_every=2 --set context_prob=0.5 \
  --set context_length=16 --set action_in_latents=true --set flow_share=0.75 \
  --set ramp_weight=false --set motion_weight=7 --set action_dropout=0.1 --steps 5000 \
  --batch-size 16 --seq-len 8 --long-seq-len 16 --long-every 4 --lr 2e-4 --warmup 50 \
  --ckpt-every 250 --image-every 4000 --horizon 100 --threads 1
python -c "import json; p = 'runs/dk-cfg/bundle/config.json'; c = json.load(open(p)); \
c['models']['dynamics']['config']['guidance'] = 1.0; json.dump(c, open(p, 'w'), indent=2)"
$D eval-world-model --bundle runs/dk-cfg/bundle --dataset dreamgym/doorkey-mixed-v0 \
  --context 4 --horizon 16 --windows 32 --num-steps 4 64
# The shipped decoder since 2026-12-06: the bundle's decoder fine-tuned on 2,048 of its own
# open-loop dreams of the training episodes (encoder, dynamics and contexts unchanged), in two
# rounds: the first dreamed with sample_d "step" (the bundle then had no sample_d), the second
# with "finest" (as it samples now); then the tokenizer.safetensors of runs/dk-decoder3/bundle
# copied into envs/bundles/minigrid-doorkey-8x8, and sample_d "finest" set in its config.json
# (chosen with `python -m experiments.bench.paired_eval --dataset dreamgym/doorkey-mixed-v0
# B 'B:sample_d="finest"' --seeds 1 2 3 --windows 64 --threads 1`, B the bundle after round 1)
$D train-decoder --bundle envs/bundles/minigrid-doorkey-8x8 --dataset dreamgym/doorkey-mixed-v0 \
  --run-dir runs/dk-decoder --steps 6000 --batch-size 4 --lr 1e-4 --warmup 100 --threads 1 \
  --image-every 1000 --ckpt-every 500
python -c "import json; p = 'runs/dk-decoder/bundle/config.json'; c = json.load(open(p)); \
c['models']['dynamics']['config']['sample_d'] = 'finest'; json.dump(c, open(p, 'w'), indent=2)"
$D train-decoder --bundle runs/dk-decoder/bundle --dataset dreamgym/doorkey-mixed-v0 \
  --run-dir runs/dk-decoder3 --steps 8000 --batch-size 4 --lr 1e-4 --warmup 100 --threads 1 \
  --image-every 1000 --ckpt-every 500 --seed 1
