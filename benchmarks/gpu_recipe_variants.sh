#!/usr/bin/env bash
# One device call: train recipe variants against the 4-px grid texture for the styles that show it, side by side
# on one GPU, with the same variants run for a tenth of the steps; screen them (benchmarks/screen_models.py) and
# bring back (7 files), per style, the picked variant's model and its tenth-of-steps twin.
# Expects .device/ (benchmarks/prepare_device_payload.py). At most 8 files come back under $OUT.
#   STYLES="great_wave starry_night" STEPS=762 LIMIT=330 bash benchmarks/gpu_recipe_variants.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FASTNST_VGG_WEIGHTS=$PWD/.device/vgg16_features.pth
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STYLES=${STYLES:-"great_wave starry_night horse_mackerel night_cafe"}
TENTH_ONLY=${TENTH_ONLY:-"moulin_de_la_galette"}  # styles whose shipped model stays, missing only the tenth run
STEPS=${STEPS:-762}; LIMIT=${LIMIT:-330}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
mkdir -p ../shared/data && cp -r .device/photos .device/styles ../shared/data/
V=runs/variants; rm -rf $V runs/zoo runs/models runs/tenth runs/tenth_models; mkdir -p $V
for s in $STYLES; do
  base="inherit = \"$PWD/configs/styles/$s.toml\""
  printf '%s\ntv_weight = 3e6\n' "$base" > $V/${s}__tv3e6.toml
  printf '%s\ntv_weight = 1.5e7\n' "$base" > $V/${s}__tv15e6.toml
  printf '%s\ntv_weight = 3e6\nstyle_layer_weights = [0.25, 1.0, 1.0, 1.0]\n' "$base" > $V/${s}__tv3e6_l1q.toml
done
TENTH_CONFIGS="$V/*.toml"
for s in $TENTH_ONLY; do TENTH_CONFIGS="$TENTH_CONFIGS configs/styles/$s.toml"; done
COMMON="--recipe gpu --threads 1"
EXTRA=${EXTRA:-}  # more train flags, e.g. a smoke test: EXTRA="--device cpu --image-size 32 --batch-size 1"
python3 scripts/train_zoo.py $TENTH_CONFIGS $COMMON --steps $((STEPS / 10)) --max-seconds $LIMIT \
  --runs-dir runs/tenth --models-dir runs/tenth_models -- --num-workers 1 --no-tensorboard $EXTRA > runs/tenth.log 2>&1 &
python3 scripts/train_zoo.py $V/*.toml $COMMON --steps "$STEPS" --max-seconds "$LIMIT" \
  --runs-dir runs/zoo --models-dir runs/models -- --num-workers 1 2>&1 > runs/zoo.log 2>&1
wait
tail -n 40 runs/zoo.log; tail -n 3 runs/tenth.log
SCREEN="--data-dir ../shared/data/photos --vgg-weights $FASTNST_VGG_WEIGHTS"
python3 benchmarks/screen_models.py runs/models/* $SCREEN --json "$OUT/screen.json" --choice runs/choice.txt
python3 benchmarks/screen_models.py runs/tenth_models/* $SCREEN --json runs/screen_tenth.json | cut -c1-120
while read -r style variant; do
  mkdir -p runs/pick/$style/full runs/pick/$style/tenth
  cp runs/models/${style}__$variant/model.* runs/pick/$style/full/
  cp runs/tenth_models/${style}__$variant/model.* runs/pick/$style/tenth/
  tar cf "$OUT/pick_$style.tar" -C runs/pick $style
done < runs/choice.txt
for s in $TENTH_ONLY; do tar rf "$OUT/tenth_only.tar" -C runs/tenth_models $s; done
tar czf "$OUT/logs.tgz" runs/zoo/*/train.log runs/tenth/*/train.log runs/variants runs/*.log runs/screen_tenth.json runs/choice.txt
ls -la "$OUT"
