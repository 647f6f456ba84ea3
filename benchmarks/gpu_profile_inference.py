#!/usr/bin/env python3
"""Where a 1080p frame's GPU time goes, and what compilation buys: for the next step towards real-time video.

Times the shipped model on the GPU with input and output resident there (CUDA events, median of repeats) for
eager fp16 channels_last (what the torch backend runs), then torch.compile in two modes, and prints the profiler's
table of the eager run's most expensive operators by input shape. Run on a GPU machine from the repository root:

    PYTHONPATH=. python benchmarks/gpu_profile_inference.py --model starry_night --size 1920x1080
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fastnst.model.files import load_model


def median_ms(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--compile-timeout", type=float, default=120.0, help="skip compile modes after this")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    net, _ = load_model(args.model, device="cuda")
    net = net.eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, height, width, device="cuda").contiguous(memory_format=torch.channels_last)
    print(torch.cuda.get_device_name(), torch.__version__, f"{width}x{height}", flush=True)

    def eager(dtype: torch.dtype):
        def run() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                net(x)
        return run

    results = {}
    for name, dtype in (("eager fp16", torch.float16), ("eager bf16", torch.bfloat16)):
        results[name] = median_ms(eager(dtype))
        print(f"{name:34s} {results[name]:7.2f} ms  {1000 / results[name]:6.1f} fps", flush=True)
    half = load_model(args.model, device="cuda")[0].eval().half().to(memory_format=torch.channels_last)
    xh = x.half()

    def pure_half() -> None:
        with torch.inference_mode():
            half(xh)
    results["eager pure fp16"] = median_ms(pure_half)
    print(f"{'eager pure fp16 (weights fp16)':34s} {results['eager pure fp16']:7.2f} ms  "
          f"{1000 / results['eager pure fp16']:6.1f} fps", flush=True)

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(5):
            pure_half()
        torch.cuda.synchronize()
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=18,
                                                             max_name_column_width=40, max_shapes_column_width=60))
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50), flush=True)

    began = time.time()
    for mode in ("max-autotune-no-cudagraphs", "reduce-overhead"):
        if time.time() - began > args.compile_timeout:
            print(f"compile {mode}: skipped (time)")
            continue
        try:
            compiled = torch.compile(half, mode=mode)

            def run_compiled(compiled=compiled) -> None:
                with torch.inference_mode():
                    compiled(xh)
            t0 = time.time()
            run_compiled()
            torch.cuda.synchronize()
            took = time.time() - t0
            ms = median_ms(run_compiled)
            print(f"{'compile ' + mode:34s} {ms:7.2f} ms  {1000 / ms:6.1f} fps  (compile {took:.0f} s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"compile {mode}: failed: {str(exc).splitlines()[0][:200]}", flush=True)


if __name__ == "__main__":
    main()
