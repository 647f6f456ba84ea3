#!/usr/bin/env bash
# Issue #17 (fastest GPU path, training speed, server batching) as ONE device call of about 9.5 minutes.
# Each part is benchmarks/gpu_paths.py; results: $OUT/gpu_issue17.json (every part, raw and summarised) and
# $OUT/gpu_issue17.log (the whole output); the tables are printed at the end. $OUT defaults to benchmarks/results.
#
# 1. Here, before the device call (pip needs the internet; writes the git-ignored .whl/ and .device/):
#      bash benchmarks/gpu_issue17.sh --prepare        # wheels the device image lacks (PyAV, the FastAPI stack,
#                                                      # 40 MiB) and the style painting at 512 px
#      VGG=1 bash benchmarks/gpu_issue17.sh --prepare  # also the real VGG16 weights as fp16 (+29 MiB); without
#                                                      # them training is timed with random VGG16 weights (the
#                                                      # speed of dense convolutions does not depend on the values)
#    --prepare ends by comparing what would travel with the device call's 64 MiB limit.
# 2. The device call (the `run` tool):
#      command: bash benchmarks/gpu_issue17.sh    carry: [".whl", ".device"]    timeout_s: 600
#    Two calls instead, if one does not fit (each part keeps its budget; the second call writes the summary of
#    what the work folder holds, so give both the same WORK, e.g. WORK=/tmp/issue17 on a warm machine):
#      PARTS="train infer" WORK=/tmp/issue17 bash benchmarks/gpu_issue17.sh             carry: [".device"]
#      PARTS="video server" WORK=/tmp/issue17 bash benchmarks/gpu_issue17.sh            carry: [".whl"]
# 3. Toy run on the CPU, every part at toy size (CUDA-only cases report "skipped: no CUDA"), under 3 minutes:
#      OUT=/tmp/issue17 bash benchmarks/gpu_issue17.sh --toy       (or TOY=1)
#
# Parts and their budgets in seconds on the GPU (each stops itself within its budget; `timeout` backs that up):
#   train  220  benchmarks/train_throughput.py, 256² × batch 4: the reference recipe with fp32-cl and bf16-cl
#               eager, then with compile "default", then "reduce-overhead" (CUDA graphs), each run interleaved
#               with its own reference; then the best variant at batch 8 and 16
#   infer  150  1920×1080, frame on the GPU: torch fp32 (PSNR reference) and fp16 eager, onnxruntime CUDA fp16
#               through fastnst's backend (host copies) and with IO binding, fastnst's --compile (torch.compile's
#               default mode), reduce-overhead (CUDA graphs), TensorRT if its libraries exist; PSNR gate 35 dB
#   video  110  `fastnst stylize` of a 1080p video (30 and 120 frames) with --backend auto, then with --compile
#               (the second run of each finds the compile caches the first one filled)
#   server  50  benchmarks/server_load.py --device cuda, 16 clients, 10 s per mode, batched vs unbatched
#
# What stands in the way on today's device image (checked against /work/.library/device/KINDS.md):
#   - its onnxruntime is the CPU build (1.30.0: Azure and CPU providers), and onnxruntime-gpu (a 255 MB wheel)
#     cannot travel under the 64 MiB limit, so the onnxruntime CUDA cases are skipped with that reason and
#     `--backend auto` (video, server) runs PyTorch on the GPU there; the script reports which path it got;
#   - the checkout itself (models/ alone is 119 MiB) is over that limit: --prepare prints the total. The run
#     of 2026-12-04 moved every file of models/ out of the tree for the call except starry_night's
#     model.safetensors, model.json, model.fp16.onnx and README.md (54 MiB travelled, with .whl and .device).
#
# Part 4 (not run: it does not fit 15 minutes of device time). The zoo at 5× today's images per style: the
# shipped models saw 762 steps × 8 ≈ 6 k crops; 3810 steps × 8 ≈ 30 k. The last zoo run reached 762 steps per
# style in a 330 s budget with all 7 styles training at once on the H200, so this is ≈ 25-30 minutes: a session
# with at least 35 minutes of device time, in 10-minute calls on one warm machine (train_zoo resumes every run
# from runs/zoo5x/<style>/checkpoints/last.pt by itself; checkpoints are too large to come back between sessions):
#   here:   python benchmarks/prepare_device_payload.py      # .device/: fp16 VGG16, photos and styles at 512 px
#   device: export PYTHONPATH=$PWD FASTNST_VGG_WEIGHTS=$PWD/.device/vgg16_features.pth; \
#           mkdir -p ../shared/data && cp -r .device/photos .device/styles ../shared/data/; \
#           python3 scripts/train_zoo.py configs/styles/*.toml --recipe gpu --steps 3810 --max-seconds 540 \
#             --runs-dir runs/zoo5x --models-dir runs/models5x --threads 2 -- --num-workers 2
#           (the same command again in each following call until every style reports "finished"), then
#           python3 benchmarks/screen_models.py runs/models5x/* --data-dir ../shared/data/photos \
#             --vgg-weights $FASTNST_VGG_WEIGHTS --json $OUT/screen5x.json
#           and bring the models back in pairs (tar, at most 8 files under $OUT), as gpu_zoo_and_bench.sh does.
set -u
cd "$(dirname "$0")/.."
TOY=${TOY:-0}
case "${1:-}" in
  --toy) TOY=1 ;;
  --prepare) PREPARE=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_issue17.sh [--toy | --prepare]" >&2; exit 2 ;;
esac
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

if [ "${PREPARE:-0}" = 1 ]; then
  VGG_ARG=()
  [ "${VGG:-0}" = 1 ] && VGG_ARG=(--vgg ../shared/data/vgg/vgg16_features.pth)
  exec "$PY" benchmarks/gpu_paths.py prepare "${VGG_ARG[@]}"
fi

OUT=${OUT:-$PWD/benchmarks/results}
mkdir -p "$OUT"
NAME=gpu_issue17; [ "$TOY" = 1 ] && NAME=gpu_issue17_toy
exec > >(tee "$OUT/$NAME.log") 2>&1
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/issue17.XXXXXX")}
mkdir -p "$WORK"
PARTS=${PARTS:-"train infer video server"}
began=$(date +%s)

# The device image lacks PyAV and the server's stack (KINDS.md): install the carried wheels outside the tree.
if ! "$PY" -c "import av, fastapi, fastapi_offline, uvicorn" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site17 .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site17
fi

# VGG16 weights: given, carried, the shared data set, or random (timing only; the report says which).
VGG_NOTE="real VGG16 weights"
if [ -z "${FASTNST_VGG_WEIGHTS:-}" ]; then
  for candidate in .device/vgg16_features.pth ../shared/data/vgg/vgg16_features.pth; do
    [ -f "$candidate" ] && { export FASTNST_VGG_WEIGHTS=$PWD/$candidate; break; }
  done
fi
if [ -z "${FASTNST_VGG_WEIGHTS:-}" ]; then
  export FASTNST_VGG_WEIGHTS=$WORK/vgg16_random_features.pth
  "$PY" -c "import sys, torch, torchvision; torch.manual_seed(0); \
torch.save(torchvision.models.vgg16(weights=None).features.state_dict(), sys.argv[1])" "$FASTNST_VGG_WEIGHTS"
  VGG_NOTE="random VGG16 weights (the real ones were not carried; speed does not depend on the values)"
fi
STYLE=samples/castle.jpg
for candidate in .device/styles/van_gogh_starry_night.jpg ../shared/data/styles/van_gogh_starry_night.jpg; do
  [ -f "$candidate" ] && { STYLE=$candidate; break; }
done
DATA=samples  # three real photos: training is timed on pre-loaded random crops, so their number does not matter
for candidate in .device/photos ../shared/data/photos; do [ -d "$candidate" ] && { DATA=$candidate; break; }; done

if [ "$TOY" = 1 ]; then
  DEVICE=cpu
  export OMP_NUM_THREADS=1  # one thread per process: a loaded 2-core machine slows spinning thread teams 100×
  BUDGETS=(120 45 60 30)
  TRAIN_ARGS=(--size 32 --batch-size 2 --more-batches 4 --rounds 2 --steps 2 --warmup 1 --run-cap-s 100
              --min-run-s 10)
  INFER_ARGS=(--size 96x64 --repeats 4 --rounds 2 --compile-estimate-s 15)
  VIDEO_ARGS=(--size 96x64 --frames 4 12)
  SERVER_ARGS=(--seconds 3 --clients 2 --side 64 --warmup 1)
else
  DEVICE=cuda
  TRAIN_ARGS=(--size 256 --batch-size 4 --more-batches 8 16 --rounds 3 --steps 10 --warmup 3)
  INFER_ARGS=(--size 1920x1080 --repeats 40 --rounds 4)
  VIDEO_ARGS=(--size 1920x1080 --frames 30 120)
  SERVER_ARGS=(--seconds 10 --clients 16 --side 512 --warmup 2)
  BUDGETS=(220 150 110 50)
fi
BUDGET_TRAIN=${BUDGET_TRAIN:-${BUDGETS[0]}} BUDGET_INFER=${BUDGET_INFER:-${BUDGETS[1]}}
BUDGET_VIDEO=${BUDGET_VIDEO:-${BUDGETS[2]}} BUDGET_SERVER=${BUDGET_SERVER:-${BUDGETS[3]}}

echo "issue #17 on $(hostname), $(date -u +%FT%TZ), toy=$TOY, parts: $PARTS, work: $WORK"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())
try:
    import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())
except ImportError: print('onnxruntime: not installed')"
echo "training data $DATA, style $STYLE, $VGG_NOTE ($FASTNST_VGG_WEIGHTS)"

part() {  # part NAME BUDGET ARGS...: one gpu_paths.py part, stopped 10 s after its own budget at the latest
  local name=$1 budget=$2; shift 2
  case " $PARTS " in *" $name "*) ;; *) return 0 ;; esac
  echo; echo "===== $name (budget ${budget} s) ====="
  timeout -k 5 $((budget + 10)) "$PY" benchmarks/gpu_paths.py "$name" --work "$WORK" --device "$DEVICE" \
    --budget-s "$budget" "$@" || echo "$name: exit code $?"
}
part train "$BUDGET_TRAIN" "${TRAIN_ARGS[@]}" --data-dir "$DATA" --style "$STYLE" --vgg-note "$VGG_NOTE" \
  --group fp32-cl,bf16-cl --group bf16-cl-compile --group bf16-cl-graphs
part infer "$BUDGET_INFER" "${INFER_ARGS[@]}"
part video "$BUDGET_VIDEO" "${VIDEO_ARGS[@]}"
part server "$BUDGET_SERVER" "${SERVER_ARGS[@]}"
TOY_FLAG=(); [ "$TOY" = 1 ] && TOY_FLAG=(--toy)
"$PY" benchmarks/gpu_paths.py summary --work "$WORK" --output "$OUT/$NAME.json" "${TOY_FLAG[@]}"
echo "took $(( $(date +%s) - began )) s"
