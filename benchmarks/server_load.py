#!/usr/bin/env python3
"""Server load: closed-loop clients against ``fastnst serve`` on 127.0.0.1, dynamic batching on and off.

Each mode starts a fresh server process with a shipped model, sends a few warm-up requests, then runs
``--clients`` concurrent clients, each posting a 512² photo and sending the next request as soon as the answer
arrives, for ``--seconds``. Requests still running at the end are awaited (bounded by the request timeout) and
counted. Reported per mode: throughput (successful images/s), latency p50/p95/p99, errors by status. Usage:

    python benchmarks/server_load.py [--clients 16] [--seconds 60] [--side 512] [--model starry_night] [--device cpu]

``--burst`` measures the server under a burst instead (issue #12): ``fastnst serve --models models`` with every
shipped model and default settings, 100 simultaneous POSTs of one 1024×768 JPEG (no keep-alive), then a second
burst of 40, then one ``max_side=2048`` request of a 2048×1536 JPEG; the server's RSS (with any children) is
sampled every 0.25 s until 30 s after the last request, and /healthz and /readyz are probed throughout. It writes
benchmarks/results/server_burst.json and server_burst.png (RSS and outcomes over time):

    python benchmarks/server_load.py --burst [--bursts 100 40] [--output benchmarks/results/server_burst.json]

``--ray`` compares, in one run, plain ``fastnst serve`` with ``fastnst serve --ray --replicas 1`` and
``--replicas 2`` (a local Ray instance started by the command; same settings, batching on): closed-loop load as
above, plus Ray's overhead per request (one client, sequential 64² requests, median latency against the plain
server's) and the RSS of all processes of each server (Ray's own processes included). It writes
benchmarks/results/server_ray.json:

    python benchmarks/server_load.py --ray [--clients 8] [--seconds 40]

Load goes to 127.0.0.1 only, is bounded in clients (≤ 64; ≤ 200 a burst) and time (≤ 600 s a mode), and the server
processes are always stopped. Results are printed and written to benchmarks/results/server_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from typing import Any

import httpx
import torch
from PIL import Image

from fastnst.utils.machine import cpu_model

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
                 timeout_s: float, device: str, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "fastnst.cli", "-q", "serve", "--models", str(zoo), "--host", HOST,
               "--port", str(port), "--device", device, "--max-batch", str(max_batch), "--max-wait-ms",
               str(max_wait_ms), "--queue-size", str(queue_size), "--request-timeout-s", str(timeout_s),
               "--no-background-load", "--max-side", "1024", *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)  # Ray's processes are stopped with the server's group
    wait_until_ready(process, port, 300)
    return process


def wait_until_ready(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Poll /readyz until the server answers 200; a server that exits or stays unready is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not become ready within {timeout_s:g} s")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):  # what the server started and left (Ray's GCS, raylet, workers)
        os.killpg(process.pid, signal.SIGKILL)


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
    if "--burst" in sys.argv[1:]:
        return burst_main([arg for arg in sys.argv[1:] if arg != "--burst"])
    if "--ray" in sys.argv[1:]:
        return ray_main([arg for arg in sys.argv[1:] if arg != "--ray"])
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


# ------------------------------------------------------------------------------------------------- Ray mode


def group_rss_bytes(pid: int) -> int:
    """Resident memory of every process in ``pid``'s session (the server and all it started, Ray's included)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == pid:  # the session id (field 6 of stat) is the server's pid
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss in pages (field 24)
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


def sequential_latency(url: str, body: bytes, params: dict[str, str], count: int) -> float:
    """Median latency of ``count`` one-at-a-time requests."""
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            sent = time.perf_counter()
            client.post(f"{url}/v1/stylize", params=params, content=body,
                        headers={"content-type": "image/jpeg"}).raise_for_status()
            times.append(time.perf_counter() - sent)
    return statistics.median(times)


async def load_sampling_rss(url: str, pid: int, body: bytes, clients: int, seconds: float,
                            params: dict[str, str]) -> tuple[dict[str, object], int]:
    """:func:`closed_loop`, sampling the server's total RSS every 0.5 s; returns its result and the peak RSS."""
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, group_rss_bytes(pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    try:
        return await closed_loop(url, body, clients, seconds, params, 300.0), peak
    finally:
        sampler.cancel()


def ray_mode(zoo: Path, extra: tuple[str, ...], args: argparse.Namespace, body: bytes, small: bytes,
             params: dict[str, str], queue_size: int) -> dict[str, object]:
    """Start one server (plain or on Ray), warm it, measure the small-request latency, then the closed loop."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    started = time.perf_counter()
    process = start_server(zoo, port, 8, 10.0, queue_size, 300.0, "cpu", extra)
    ready_s = time.perf_counter() - started
    try:
        for _ in range(2):
            httpx.post(f"{url}/v1/stylize", params=params, content=body, timeout=300)
        idle_rss = group_rss_bytes(process.pid)
        overhead = sequential_latency(url, small, {**params, "max_side": "64"}, args.overhead_requests)
        mode, peak_rss = asyncio.run(load_sampling_rss(url, process.pid, body, args.clients, args.seconds, params))
    finally:
        stop_server(process)
    mode.update(ready_s=round(ready_s, 1), small_request_p50_ms=round(overhead * 1000, 1),
                rss_idle_mib=round(idle_rss / 2**20), rss_peak_mib=round(max(idle_rss, peak_rss) / 2**20))
    return mode


def ray_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="plain fastnst serve vs Ray Serve replicas (see the module doc)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=2, help="each round runs every mode once, in turn")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--overhead-requests", type=int, default=40)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "server_ray.json")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.seconds <= 600 or not 1 <= args.rounds <= 5:
        parser.error("--clients must be 1..64, --seconds 1..600 and --rounds 1..5 (bounded load)")
    body, small = photo_bytes(args.side), photo_bytes(64)
    params = {"model": args.model, "max_side": str(args.side), "format": "jpeg"}
    queue_size = max(args.clients * 2, 32)
    modes = {"plain": (), "ray x1": ("--ray", "--replicas", "1"),
             "ray x2": ("--ray", "--replicas", "2", "--replica-cpus", "1")}
    results: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "clients": args.clients,
        "seconds": args.seconds, "rounds": args.rounds, "image": f"{args.side}x{args.side} JPEG (castle.jpg crop)",
        "model": args.model, "max_batch": 8, "queue_size": queue_size, "runs": {name: [] for name in modes},
    }
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(tmp)
        (zoo / args.model).symlink_to(REPO / "models" / args.model, target_is_directory=True)
        for round_index in range(args.rounds):
            for name, extra in modes.items():
                print(f"[round {round_index + 1}, {name}] {args.clients} clients for {args.seconds:g} s ...",
                      flush=True)
                results["runs"][name].append(ray_mode(zoo, extra, args, body, small, params, queue_size))
    summary = {}
    for name, runs in results["runs"].items():
        def median(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(run[key] for run in runs)

        summary[name] = {"img_s": median("throughput_img_s"),
                         "p50_s": statistics.median(run["latency_s"]["p50"] or 0 for run in runs),
                         "p99_s": statistics.median(run["latency_s"]["p99"] or 0 for run in runs),
                         "small_p50_ms": median("small_request_p50_ms"), "rss_idle_mib": median("rss_idle_mib"),
                         "rss_peak_mib": median("rss_peak_mib"), "ready_s": median("ready_s"),
                         "errors": sum(sum(run["errors"].values()) for run in runs)}
    plain = summary["plain"]
    for mode in summary.values():
        mode["vs_plain"] = round(mode["img_s"] / plain["img_s"], 2)
        mode["overhead_ms"] = round(mode["small_p50_ms"] - plain["small_p50_ms"], 1)
    results["summary"] = summary
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['cpu']} ({results['cpu_count']} CPU cores), {args.clients} clients, {args.side}² images, "
          f"medians of {args.rounds} interleaved rounds")
    print(f"{'mode':<8} {'img/s':>6} {'×plain':>7} {'p50 s':>6} {'p99 s':>6} {'64² p50 ms':>10} {'+ms':>6} "
          f"{'RSS idle/peak MiB':>18} {'ready s':>7} errors")
    for name, mode in summary.items():
        print(f"{name:<8} {mode['img_s']:>6.3f} {mode['vs_plain']:>7.2f} {mode['p50_s']:>6.2f} {mode['p99_s']:>6.2f} "
              f"{mode['small_p50_ms']:>10.1f} {mode['overhead_ms']:>6.1f} "
              f"{mode['rss_idle_mib']:>8}/{mode['rss_peak_mib']:<9} {mode['ready_s']:>7.1f} {mode['errors']}")
    print(f"wrote {args.output}")
    return 0


# ------------------------------------------------------------------------------------------------- burst mode


def photo_of_size(width: int, height: int) -> bytes:
    """samples/castle.jpg centre-cropped to width:height and resized to width×height, as JPEG."""
    with Image.open(REPO / "samples" / "castle.jpg") as image:
        w, h = image.size
        scale = min(w / width, h / height)
        cw, ch = int(width * scale), int(height * scale)
        box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
        photo = image.convert("RGB").crop(box).resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, from /proc (0 once it has exited)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def start_default_server(models: Path, port: int) -> subprocess.Popen[bytes]:
    """``fastnst serve --models models`` with the server's defaults (only the port is chosen here)."""
    command = [sys.executable, "-m", "fastnst.cli", "-q", "serve", "--models", str(models), "--host", HOST,
               "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_ready(process, port, 300)
    return process


async def burst_run(url: str, pid: int, bursts: list[int], body: bytes, large: bytes | None, model: str,
                    settle_s: float) -> dict[str, object]:
    """Fire the bursts one after another (each waits for the previous one's answers), then the large request."""
    t0 = time.perf_counter()
    rss: list[tuple[float, int]] = []
    probes: list[tuple[float, str, str, float]] = []  # (t, path, status, latency)
    requests: list[dict[str, object]] = []
    stop = asyncio.Event()

    async def sample_rss() -> None:
        while not stop.is_set():
            rss.append((round(time.perf_counter() - t0, 3), rss_bytes(pid)))
            await asyncio.sleep(0.25)

    async def probe(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            for path in ("/healthz", "/readyz"):
                sent = time.perf_counter()
                try:
                    status = str((await client.get(url + path, timeout=5)).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                probes.append((round(sent - t0, 3), path, status, round(time.perf_counter() - sent, 4)))
            await asyncio.sleep(0.5)

    async def one(client: httpx.AsyncClient, phase: str, data: bytes, params: dict[str, str]) -> None:
        sent = time.perf_counter()
        retry_after = None
        try:
            response = await client.post(f"{url}/v1/stylize", params=params, content=data,
                                         headers={"content-type": "image/jpeg"})
            status, retry_after = str(response.status_code), response.headers.get("retry-after")
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        requests.append({"phase": phase, "sent": round(sent - t0, 3), "done": round(time.perf_counter() - t0, 3),
                         "latency": round(time.perf_counter() - sent, 3), "status": status,
                         "retry_after": retry_after})

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(180), limits=limits) as client, \
            httpx.AsyncClient(timeout=httpx.Timeout(5), limits=limits) as prober:
        tasks = [asyncio.create_task(sample_rss()), asyncio.create_task(probe(prober))]
        await asyncio.sleep(2)  # idle baseline
        params = {"model": model}
        phases: list[dict[str, object]] = []
        for index, size in enumerate(bursts):
            name = f"burst{index + 1}"
            started = time.perf_counter() - t0
            print(f"[{name}] {size} concurrent requests at t={started:.1f} s", flush=True)
            await asyncio.gather(*(one(client, name, body, params) for _ in range(size)))
            phases.append({"name": name, "start": round(started, 3), "end": round(time.perf_counter() - t0, 3)})
        if large is not None:
            started = time.perf_counter() - t0
            print(f"[large] one max_side=2048 request at t={started:.1f} s", flush=True)
            await one(client, "large", large, {**params, "max_side": "2048"})
            phases.append({"name": "large", "start": round(started, 3), "end": round(time.perf_counter() - t0, 3)})
        print(f"settling for {settle_s:g} s", flush=True)
        await asyncio.sleep(settle_s)
        stop.set()
        await asyncio.gather(*tasks)
    return {"rss": rss, "probes": probes, "requests": requests, "phases": phases}


def summarise_burst(trace: dict[str, object]) -> dict[str, object]:
    rss: list[tuple[float, int]] = trace["rss"]  # type: ignore[assignment]
    requests: list[dict[str, object]] = trace["requests"]  # type: ignore[assignment]
    phases: list[dict[str, object]] = trace["phases"]  # type: ignore[assignment]
    first = phases[0]["start"]
    last_end = phases[-1]["end"]
    idle = [value for t, value in rss if t < first]  # type: ignore[operator]
    settled = [value for t, value in rss if t >= last_end + 25]  # type: ignore[operator]

    def pct(values: list[float], q: float) -> float | None:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None

    out: dict[str, object] = {}
    for phase in phases:
        mine = [r for r in requests if r["phase"] == phase["name"]]
        statuses: dict[str, int] = {}
        for r in mine:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        ok = [float(r["latency"]) for r in mine if r["status"] == "200"]  # type: ignore[arg-type]
        refused = [float(r["latency"]) for r in mine if r["status"] == "503"]  # type: ignore[arg-type]
        during = [value for t, value in rss if phase["start"] <= t <= phase["end"]]  # type: ignore[operator]
        out[str(phase["name"])] = {
            "requests": len(mine), "statuses": statuses, "p50_200_s": pct(ok, 0.5), "p99_200_s": pct(ok, 0.99),
            "max_503_s": max(refused) if refused else None,
            "retry_after_values": sorted({str(r["retry_after"]) for r in mine if r["retry_after"]}),
            "peak_rss_mb": round(max(during) / 2**20, 1) if during else None,
            "duration_s": round(float(phase["end"]) - float(phase["start"]), 2)}  # type: ignore[arg-type]
    probes: list[tuple[float, str, str, float]] = trace["probes"]  # type: ignore[assignment]
    out["probes"] = {path: {"count": sum(1 for p in probes if p[1] == path),
                            "non_200": sum(1 for p in probes if p[1] == path and p[2] != "200"),
                            "max_latency_s": max((p[3] for p in probes if p[1] == path), default=None)}
                     for path in ("/healthz", "/readyz")}
    out["rss_mb"] = {"idle": round(statistics.median(idle) / 2**20, 1) if idle else None,
                     "peak": round(max(v for _, v in rss) / 2**20, 1),
                     "settled_30s": round(statistics.median(settled) / 2**20, 1) if settled else None}
    return out


def plot_burst(trace: dict[str, object], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rss: list[tuple[float, int]] = trace["rss"]  # type: ignore[assignment]
    requests: list[dict[str, object]] = trace["requests"]  # type: ignore[assignment]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot([t for t, _ in rss], [v / 2**30 for _, v in rss], color="black")
    top.axhline(2.5, color="red", linestyle="--", linewidth=0.8, label="2.5 GB target")
    for phase in trace["phases"]:  # type: ignore[attr-defined]
        top.axvspan(phase["start"], phase["end"], alpha=0.1, color="blue")
    top.set_ylabel("server RSS (GiB)")
    top.legend(loc="upper right")
    top.set_title(title)
    colours = {"200": "green", "503": "orange", "504": "red"}
    for status in sorted({str(r["status"]) for r in requests}):
        times = sorted(float(r["done"]) for r in requests if r["status"] == status)  # type: ignore[arg-type]
        bottom.step(times, range(1, len(times) + 1), where="post", label=status, color=colours.get(status))
    bottom.set_ylabel("answers (cumulative)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def burst_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="server under a burst (see the module doc)")
    parser.add_argument("--bursts", type=int, nargs="+", default=[100, 40])
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--no-large", action="store_true", help="skip the single max_side=2048 request")
    parser.add_argument("--settle-s", type=float, default=30.0)
    parser.add_argument("--label", default="", help="a note stored in the results (e.g. before/after)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "server_burst.json")
    args = parser.parse_args(argv)
    if not all(1 <= size <= 200 for size in args.bursts) or not 0 <= args.settle_s <= 120:
        parser.error("each burst must be 1..200 requests and --settle-s 0..120 (bounded load)")
    body = photo_of_size(1024, 768)
    large = None if args.no_large else photo_of_size(2048, 1536)
    port = free_port()
    process = start_default_server(args.models, port)
    try:
        trace = asyncio.run(burst_run(f"http://{HOST}:{port}", process.pid, args.bursts, body, large, args.model,
                                      args.settle_s))
    finally:
        stop_server(process)
    import fastnst

    summary = summarise_burst(trace)
    results = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "label": args.label,
               "fastnst_from": str(Path(fastnst.__file__).resolve().parents[1]),
               "models": sorted(p.name for p in args.models.iterdir() if (p / "model.safetensors").is_file()),
               "model": args.model, "image": "1024x768 JPEG (samples/castle.jpg, resized)",
               "large_image": None if large is None else "2048x1536 JPEG, max_side=2048",
               "bursts": args.bursts, "rss_unit": "MiB (2**20 bytes); trace: bytes", "summary": summary,
               "trace": trace}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    plot_burst(trace, args.output.with_suffix(".png"), f"{args.label or 'server'} burst: {args.bursts}")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
