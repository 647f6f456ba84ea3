#!/usr/bin/env python3
"""Server load: closed-loop clients against ``fastnst serve`` on 127.0.0.1, dynamic batching on and off.

Each mode starts a fresh server process with a shipped model, sends a few warm-up requests, then runs
``--clients`` concurrent clients, each posting a 512² photo and sending the next request as soon as the answer
arrives, for ``--seconds``. Requests still running at the end are awaited (bounded by the request timeout) and
counted. Reported per mode: throughput (successful images/s), latency p50/p95/p99, errors by status. Usage:

    python benchmarks/server_load.py [--clients 16] [--seconds 60] [--side 512] [--model starry_night] [--device cpu]

Load goes to 127.0.0.1 only, is bounded in clients (≤ 64) and time (≤ 600 s a mode), and the server processes are
always stopped. Results are printed and written to benchmarks/results/server_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image

from fastnst.bench.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else: this is a load generator


def photo_bytes(side: int) -> bytes:
    """A real photo (samples/castle.jpg), centre-cropped and resized to side×side, as JPEG."""
    with Image.open(REPO / "samples" / "castle.jpg") as image:
        width, height = image.size
        crop = min(width, height)
        box = ((width - crop) // 2, (height - crop) // 2, (width + crop) // 2, (height + crop) // 2)
        square = image.convert("RGB").crop(box).resize((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(zoo: Path, port: int, max_batch: int, max_wait_ms: float, queue_size: int,
                 timeout_s: float, device: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "fastnst.cli", "-q", "serve", "--models", str(zoo), "--host", HOST,
               "--port", str(port), "--device", device, "--max-batch", str(max_batch), "--max-wait-ms",
               str(max_wait_ms), "--queue-size", str(queue_size), "--request-timeout-s", str(timeout_s),
               "--no-background-load", "--max-side", "1024"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not become ready within 120 s")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def closed_loop(url: str, body: bytes, clients: int, seconds: float, params: dict[str, str],
                      timeout_s: float) -> dict[str, object]:
    """Each client loops request → response → next request until ``seconds`` have passed."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s + 30), limits=limits) as client:
        started = time.perf_counter()
        stop_at = started + seconds

        async def one_client() -> None:
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                try:
                    response = await client.post(f"{url}/v1/stylize", params=params, content=body,
                                                 headers={"content-type": "image/jpeg"})
                    key = str(response.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                statuses[key] = statuses.get(key, 0) + 1
                if key == "200":
                    latencies.append(time.perf_counter() - sent)
                else:
                    await asyncio.sleep(0.1)  # back off briefly on errors (e.g. a 503's Retry-After is ≥ 1 s)

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ok = len(latencies)
    ordered = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None

    return {"requests": sum(statuses.values()), "ok": ok, "errors": {k: v for k, v in statuses.items() if k != "200"},
            "elapsed_s": round(elapsed, 2), "throughput_img_s": round(ok / elapsed, 3),
            "latency_s": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0),
                          "mean": round(statistics.fmean(latencies), 3) if latencies else None}}


def batch_histogram(url: str) -> dict[str, float]:
    """Cumulative batch-size buckets from the server's own /metrics (le → count)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("fastnst_batch_size_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--warmup-requests", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the server runs the model")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="server-side request timeout")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "server_load.json")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be 1..64 and --seconds 1..600 (bounded load)")
    model_dir = REPO / "models" / args.model
    if not (model_dir / "model.safetensors").is_file():
        parser.error(f"model {args.model} not found under models/")

    body = photo_bytes(args.side)
    params = {"model": args.model, "max_side": str(args.side), "format": "jpeg"}
    queue_size = max(args.clients * 2, 32)  # above the client count: errors here would be real failures
    modes = [("batched", args.max_batch), ("unbatched", 1)]
    results: dict[str, object] = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "clients": args.clients, "seconds": args.seconds,
        "image": f"{args.side}x{args.side} JPEG (samples/castle.jpg crop)", "model": args.model,
        "max_wait_ms": args.max_wait_ms, "queue_size": queue_size, "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(tmp)
        (zoo / args.model).symlink_to(model_dir, target_is_directory=True)
        for name, max_batch in modes:
            port = free_port()
            url = f"http://{HOST}:{port}"
            process = start_server(zoo, port, max_batch, args.max_wait_ms, queue_size, args.timeout_s, args.device)
            try:
                for _ in range(args.warmup_requests):
                    httpx.post(f"{url}/v1/stylize", params=params, content=body, timeout=args.timeout_s)
                print(f"[{name}] max_batch={max_batch}: {args.clients} clients for {args.seconds:g} s ...",
                      flush=True)
                mode = asyncio.run(closed_loop(url, body, args.clients, args.seconds, params, args.timeout_s))
                mode["max_batch"] = max_batch
                mode["batch_size_buckets"] = batch_histogram(url)
            finally:
                stop_server(process)
            results["modes"][name] = mode  # type: ignore[index]
            print(json.dumps(mode, indent=2), flush=True)

    batched, unbatched = results["modes"]["batched"], results["modes"]["unbatched"]  # type: ignore[index]
    if unbatched["throughput_img_s"]:
        results["speedup"] = round(batched["throughput_img_s"] / unbatched["throughput_img_s"], 3)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['gpu'] or results['cpu']} ({results['cpu_count']} CPU cores), {args.clients} clients, "
          f"{args.side}² images, {args.seconds:g} s per mode")
    print(f"{'mode':<10} {'img/s':>7} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'ok':>5} errors")
    for name in ("batched", "unbatched"):
        mode = results["modes"][name]  # type: ignore[index]
        lat = mode["latency_s"]
        print(f"{name:<10} {mode['throughput_img_s']:>7.3f} {lat['p50'] or 0:>7.2f} {lat['p95'] or 0:>7.2f} "
              f"{lat['p99'] or 0:>7.2f} {mode['ok']:>5} {mode['errors'] or 'none'}")
    print(f"batched / unbatched throughput: {results.get('speedup')}×; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
