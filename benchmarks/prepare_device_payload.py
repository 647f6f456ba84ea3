#!/usr/bin/env python3
"""Make .device/ for benchmarks/gpu_zoo_and_bench.sh: what a lent GPU needs, under its 64 MiB upload limit.

VGG16 weights are cast to fp16 (training runs under bf16 autocast anyway) and photos/styles downscaled so their
longer side is 512 px (training crops are 256 px taken after resizing the shorter side to 256–384 px).
"""

import sys
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
OUT = REPO / ".device"

(OUT / "photos").mkdir(parents=True, exist_ok=True)
(OUT / "styles").mkdir(parents=True, exist_ok=True)
state = torch.load(SHARED / "vgg" / "vgg16_features.pth", weights_only=True)
torch.save({key: value.half() for key, value in state.items()}, OUT / "vgg16_features.pth")
for kind in ("photos", "styles"):
    for path in sorted((SHARED / kind).glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        image.thumbnail((512, 512), Image.LANCZOS)
        image.save(OUT / kind / path.name, quality=92)
print(f"wrote {OUT}")
