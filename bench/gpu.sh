#!/usr/bin/env bash
# GPU figures for bench/RESULTS.md, in one go (about 5 minutes on an H100/H200-class card). Run from the
# repository root on a CUDA machine; logs go to $OUT (default bench/gpu-results/), the card's name first.
#
#   bash bench/gpu.sh
#
# Machines without diffusers and no network: carry wheels made beforehand with
#   pip download diffusers importlib_metadata --no-deps -d .wheels
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
$PY -c "import diffusers" 2>/dev/null || $PY -m pip install -q --no-index --find-links .wheels diffusers importlib_metadata
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/card.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/card.txt"

# full-size ADM-256 topology + ResNet-50: DIRE (40 calls), DistilDIRE (1 call), image-only, at batch 1/8/32
for precision in fp32 bf16; do
  for batch in 1 8 32; do
    timeout 300 $PY -m bench.speed --skip-small --adm-size 256 --batch "$batch" --precision "$precision" \
      --repeats 5 --dire-repeats 1
  done
done 2>&1 | tee "$OUT/speed_adm256.txt"

# UNet speed options with their ε error against fp32 (TF32, bf16, channels_last, SDPA vs classic, compile)
timeout 600 $PY -m bench.precision --unet adm --size 256 --batch 32 --compile 2>&1 | tee "$OUT/precision_adm256.txt"
timeout 300 $PY -m bench.precision --unet bundled --batch 256 --compile 2>&1 | tee "$OUT/precision_bundled.txt"

# the bundled tiled models through Detector.detect (decoding included)
timeout 300 $PY -m bench.tiles --batch 32 2>&1 | tee "$OUT/tiles.txt"

# the tests that need CUDA
timeout 300 $PY -m pytest -q -m gpu tests 2>&1 | tee "$OUT/pytest_gpu.txt"
