#!/usr/bin/env python3
"""Slow clients against ``fastnst serve --models models`` (issue #12): can they lock normal clients out?

Starts the server with default settings and every shipped model, waits until it is ready, then opens at once:

* ``--slow-uploads`` connections (32) that each send a stylize request head with a large Content-Length, 100 bytes
  of body, then 1 byte every 5 s;
* ``--unfinished-heads`` connections (200) that each send half a request head and nothing more.

Meanwhile one normal client posts a small photo every ``--interval`` s and probes /healthz; for ``--seconds`` the
script records every normal request's status and latency, and when (and with what status) the server closed each
slow connection. Results are printed and merged into benchmarks/results/slow_clients.json under ``--label``.

    python benchmarks/slow_clients.py --label after
    python benchmarks/slow_clients.py --label before --repo /tmp/before-f   # an older copy, via PYTHONPATH

Load goes to 127.0.0.1 only, is bounded in connections (≤ 500) and time (≤ 300 s), and the server is always
stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_load import HOST, free_port, stop_server, wait_until_ready  # noqa: E402 - benchmarks/ is not a package

REPO = Path(__file__).resolve().parents[1]
DRIBBLE_S = 5.0


def photo_bytes(side: int) -> bytes:
    with Image.open(REPO / "samples" / "castle.jpg") as image:
        small = image.convert("RGB")
        small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def start_server(repo: Path, models: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """``fastnst serve`` from ``repo``'s sources (defaults otherwise); returns it and its seconds to ready."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    command = [sys.executable, "-m", "fastnst.cli", "-q", "serve", "--models", str(models), "--host", HOST,
               "--port", str(port)]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_ready(process, port, 120)
    return process, time.monotonic() - started


async def watch(reader: asyncio.StreamReader, t0: float, record: dict[str, Any]) -> None:
    """Read until the server closes; note when it answered (and with what status) and when it closed."""
    data = b""
    try:
        while part := await reader.read(65536):
            if not data:
                record["answered_s"] = round(time.perf_counter() - t0, 2)
            data += part
            first = data.split(b"\r\n", 1)[0].split()
            record["status"] = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
    except (ConnectionError, OSError):
        pass
    record["closed_s"] = round(time.perf_counter() - t0, 2)


async def slow_upload(port: int, t0: float, stop_at: float) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(HOST, port)
    head = (f"POST /v1/stylize?model=starry_night HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
            "Content-Length: 5000000\r\n\r\n").encode()
    writer.write(head + b"\xff\xd8" + b"x" * 98)
    record: dict[str, Any] = {"answered_s": None, "status": None, "closed_s": None}
    closed = asyncio.ensure_future(watch(reader, t0, record))
    try:
        while not closed.done() and time.perf_counter() < stop_at:
            await asyncio.wait([closed], timeout=min(DRIBBLE_S, max(0.0, stop_at - time.perf_counter())))
            if not closed.done() and time.perf_counter() < stop_at:
                writer.write(b"x")
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    return await finish(closed, writer, record)


async def unfinished_head(port: int, t0: float, stop_at: float) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"POST /v1/stylize?model=starry_night HTTP/1.1\r\nHost: {HOST}\r\nContent-Ty".encode())
    record: dict[str, Any] = {"answered_s": None, "status": None, "closed_s": None}
    closed = asyncio.ensure_future(watch(reader, t0, record))
    await asyncio.wait([closed], timeout=max(0.0, stop_at - time.perf_counter()))
    return await finish(closed, writer, record)


async def finish(closed: asyncio.Future[None], writer: asyncio.StreamWriter,
                 record: dict[str, Any]) -> dict[str, Any]:
    if not closed.done():
        closed.cancel()
    writer.close()
    return record


async def normal_client(port: int, body: bytes, t0: float, stop_at: float, interval: float) -> list[dict[str, Any]]:
    """One stylize request (and one /healthz) every ``interval`` s, each on a fresh connection."""
    results = []
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(90), limits=fresh) as client:
        while (now := time.perf_counter()) < stop_at:
            try:
                health = await client.get(f"http://{HOST}:{port}/healthz")
                health_s = time.perf_counter() - now
                health_status = health.status_code
            except httpx.HTTPError as exc:
                health_s, health_status = time.perf_counter() - now, type(exc).__name__
            sent = time.perf_counter()
            try:
                response = await client.post(f"http://{HOST}:{port}/v1/stylize?model=starry_night", content=body,
                                             headers={"content-type": "image/jpeg"})
                status: int | str = response.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            results.append({"t_s": round(sent - t0, 2), "status": status,
                            "latency_s": round(time.perf_counter() - sent, 3),
                            "healthz": health_status, "healthz_s": round(health_s, 3)})
            await asyncio.sleep(max(0.0, sent + interval - time.perf_counter()))
    return results


def closing(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Outcome counts ("408, closed", "504, still open", "no answer, still open") and when connections closed."""
    closed = sorted(r["closed_s"] for r in records if r["closed_s"] is not None)
    answered = sorted(r["answered_s"] for r in records if r["answered_s"] is not None)
    outcomes: dict[str, int] = {}
    for record in records:
        key = (f"{record['status'] or 'no answer'}, "
               f"{'closed' if record['closed_s'] is not None else 'still open'}")
        outcomes[key] = outcomes.get(key, 0) + 1

    def spread(values: list[float]) -> dict[str, float] | None:
        return {"min": values[0], "median": statistics.median(values), "max": values[-1]} if values else None

    return {"count": len(records), "outcomes": outcomes, "still_open_at_end": len(records) - len(closed),
            "answered_after_s": spread(answered), "closed_after_s": spread(closed)}


async def attack(port: int, args: argparse.Namespace) -> dict[str, Any]:
    body = photo_bytes(args.side)
    t0 = time.perf_counter()
    stop_at = t0 + args.seconds
    slow = [asyncio.ensure_future(slow_upload(port, t0, stop_at)) for _ in range(args.slow_uploads)]
    heads = [asyncio.ensure_future(unfinished_head(port, t0, stop_at)) for _ in range(args.unfinished_heads)]
    await asyncio.sleep(1.0)  # every slow connection is open and has sent its first bytes
    normal = await normal_client(port, body, t0, stop_at, args.interval)
    slow_results, head_results = await asyncio.gather(asyncio.gather(*slow), asyncio.gather(*heads))
    ok = sorted(r["latency_s"] for r in normal if r["status"] == 200)
    statuses: dict[str, int] = {}
    for record in normal:
        statuses[str(record["status"])] = statuses.get(str(record["status"]), 0) + 1
    first_ok = next((r["t_s"] for r in normal if r["status"] == 200), None)
    return {
        "normal_requests": {"count": len(normal), "statuses": statuses, "first_200_at_s": first_ok,
                            "latency_200_s": {"p50": statistics.median(ok), "max": ok[-1]} if ok else None,
                            "healthz_max_s": max(r["healthz_s"] for r in normal) if normal else None,
                            "trace": normal},
        "slow_uploads": closing(slow_results),
        "unfinished_heads": closing(head_results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="name of this run in the results (e.g. before, after)")
    parser.add_argument("--repo", type=Path, default=REPO, help="fastnst source tree to serve (PYTHONPATH)")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--slow-uploads", type=int, default=32)
    parser.add_argument("--unfinished-heads", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=70.0, help="how long the slow clients keep going")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between normal requests")
    parser.add_argument("--side", type=int, default=256, help="longer side of the normal requests' photo")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "slow_clients.json")
    args = parser.parse_args()
    if args.slow_uploads + args.unfinished_heads > 500 or not 0 < args.seconds <= 300:
        parser.error("bounded load only: at most 500 slow connections and 300 s")
    port = free_port()
    process, ready_s = start_server(args.repo.resolve(), args.models.resolve(), port)
    try:
        result = asyncio.run(attack(port, args))
    finally:
        stop_server(process)
    result = {"repo": str(args.repo), "server_ready_s": round(ready_s, 1), "seconds": args.seconds,
              "dribble_every_s": DRIBBLE_S, "photo_side": args.side, **result}
    summary = {key: value for key, value in result["normal_requests"].items() if key != "trace"}
    print(json.dumps({"label": args.label, "normal_requests": summary, "slow_uploads": result["slow_uploads"],
                      "unfinished_heads": result["unfinished_heads"]}, indent=1))
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    existing.setdefault("runs", {})[args.label] = result
    args.output.write_text(json.dumps(existing, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
