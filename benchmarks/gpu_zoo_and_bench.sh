#!/usr/bin/env bash
# One device call: train the model zoo on a lent GPU, then measure training throughput there.
# Expects .device/ (made by benchmarks/prepare_device_payload.py): fp16 VGG16 weights, photos and styles
# downscaled to 512 px. Results go to $OUT (at most 8 files come back, so models are packed in pairs).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FASTNST_VGG_WEIGHTS=$PWD/.device/vgg16_features.pth
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-330}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
mkdir -p ../shared/data && cp -r .device/photos .device/styles ../shared/data/
python3 scripts/train_zoo.py configs/styles/*.toml --recipe gpu --budget-seconds "$BUDGET" --probe-steps 60 \
  --runs-dir runs/zoo --models-dir runs/models --threads 2 2>&1 | tee "$OUT/zoo.log"
( cd runs/models && ls -d */ | sed 's#/##' | paste - - | while read a b; do tar cf "$OUT/models_$a.tar" $a $b; done )
tar czf "$OUT/tb_logs.tgz" runs/zoo/*/tb runs/zoo/*/train.log runs/zoo/*/checkpoints/config.toml 2>/dev/null
[ "${BENCH:-1}" = 1 ] || { ls -la "$OUT"; exit 0; }
B="--device cuda --data-dir ../shared/data/photos --style ../shared/data/styles/van_gogh_starry_night.jpg"
timeout 100 python3 benchmarks/train_throughput.py $B --rounds 3 --steps 10 --warmup 3 \
  --variants fp32,fp32-cl,bf16-cl --json "$OUT/bench_gpu.json" 2>&1 | grep -v Warning
timeout 150 python3 benchmarks/train_throughput.py $B --rounds 3 --steps 10 --warmup 3 \
  --variants bf16-cl-compile --json "$OUT/bench_gpu_compile.json" 2>&1 | grep -v Warning
ls -la "$OUT"
