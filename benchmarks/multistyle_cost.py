#!/usr/bin/env python3
"""What holding several styles costs at inference: a 7-style network against the single-style one it grew from.

The 7-style model is the shipped ``starry_night`` grown by six styles (:func:`fastnst.model.transformer.extend`;
the new rows start from its own, which is what the cost depends on, not the values). Both are exported to ONNX
fp32 with ``fastnst export``'s checks. Timed, interleaved in every repeat, on one thread with process CPU time at
512²: ONNX Runtime single-style vs multi-style (the mix fed to the graph's ``style_weights`` input), and the torch
backend single-style vs multi-style baked for a mix. File sizes are compared too. Writes
benchmarks/results/multistyle_cost.json. Usage:

    python benchmarks/multistyle_cost.py [--repeats 12] [--side 512] [--styles 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fastnst.export.onnx import export_onnx
from fastnst.model.files import ONNX_FILES, WEIGHTS_FILE, load_model, save_model
from fastnst.model.transformer import extend
from fastnst.runtime.select import load_backend
from fastnst.utils.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--styles", type=int, default=7)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "multistyle_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    single_net, info = load_model(REPO / "models" / "starry_night")
    names = [f"style{index}" for index in range(args.styles)]
    mix = {names[0]: 0.6, names[-1]: 0.4}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"single": Path(tmp) / "single", "multi": Path(tmp) / "multi"}
        save_model(single_net, folders["single"], {"style_name": "single"})
        save_model(extend(single_net, args.styles - 1), folders["multi"],
                   {"style_name": "+".join(names), "styles": [{"name": name, "image": ""} for name in names]})
        for kind, folder in folders.items():
            net, model_info = load_model(folder)
            started = time.perf_counter()
            export_onnx(net, model_info, folder / ONNX_FILES["fp32"])
            print(f"exported {kind} in {time.perf_counter() - started:.1f} s", flush=True)
        runners = {
            "onnxruntime single": load_backend(folders["single"], backend="onnxruntime", device="cpu", threads=1)[0],
            "onnxruntime multi (mix)": load_backend(folders["multi"], backend="onnxruntime", device="cpu", threads=1,
                                                     mix=mix)[0],
            "torch single": load_backend(folders["single"], backend="torch", device="cpu")[0],
            "torch multi (mix, baked)": load_backend(folders["multi"], backend="torch", device="cpu", mix=mix)[0],
        }
        sizes = {kind: {"safetensors": (folder / WEIGHTS_FILE).stat().st_size,
                        "onnx": (folder / ONNX_FILES["fp32"]).stat().st_size} for kind, folder in folders.items()}
        image = torch.rand(1, 3, args.side, args.side, generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {name: [] for name in runners}
        for runner in runners.values():
            runner.stylize(image)  # warm-up
        for _ in range(args.repeats):
            for name, runner in runners.items():
                started = time.process_time()
                runner.stylize(image)
                times[name].append(time.process_time() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    results = {
        "cpu": cpu_model(), "torch": torch.__version__, "threads": 1, "clock": "process CPU time",
        "side": args.side, "styles": args.styles, "repeats": args.repeats, "mix": mix,
        "median_s": {name: round(value, 4) for name, value in medians.items()},
        "multi_vs_single": {
            "onnxruntime": round(medians["onnxruntime multi (mix)"] / medians["onnxruntime single"], 3),
            "torch": round(medians["torch multi (mix, baked)"] / medians["torch single"], 3)},
        "bytes": sizes,
        "size_ratio": {key: round(sizes["multi"][key] / sizes["single"][key], 4) for key in ("safetensors", "onnx")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
