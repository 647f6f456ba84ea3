"""Tests for the server's dynamic batcher, size buckets and per-request post-processing (no HTTP here)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.server.batching import BatcherClosed, DynamicBatcher, QueueFull, bucket_for, pad_to
from fastnst.server.postprocess import encode_image


class Recorder:
    """A fake backend: records batch sizes and the thread it ran on; doubles its input."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, key: object, batch: torch.Tensor) -> torch.Tensor:
        self.sizes.append(batch.shape[0])
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return batch * 2


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_concurrent_requests_share_one_batch_off_the_event_loop() -> None:
    recorder = Recorder()

    async def main() -> list[torch.Tensor]:
        batcher = DynamicBatcher(recorder, max_batch=8, max_wait_s=0.05, queue_size=16)
        batcher.start()
        images = [torch.full((3, 4, 4), float(i)) for i in range(5)]
        results = await asyncio.gather(*(batcher.submit("k", image) for image in images))
        await batcher.close(5)
        return results

    results = run(main())
    assert recorder.sizes == [5]
    assert recorder.threads == {"fastnst-inference_0"}  # never the event loop's thread
    for index, result in enumerate(results):  # each caller gets its own image back, in order
        assert torch.equal(result, torch.full((3, 4, 4), 2.0 * index))


def test_max_batch_and_keys_split_batches() -> None:
    recorder = Recorder()

    async def main() -> None:
        batcher = DynamicBatcher(recorder, max_batch=3, max_wait_s=0.05, queue_size=32)
        batcher.start()
        jobs = [batcher.submit("a", torch.zeros(3, 4, 4)) for _ in range(7)]
        jobs += [batcher.submit("b", torch.zeros(3, 8, 8)) for _ in range(2)]
        await asyncio.gather(*jobs)
        await batcher.close(5)

    run(main())
    assert sorted(recorder.sizes) == [1, 2, 3, 3]
    assert max(recorder.sizes) <= 3


def test_unbatched_mode_runs_one_at_a_time() -> None:
    recorder = Recorder()

    async def main() -> None:
        batcher = DynamicBatcher(recorder, max_batch=1, max_wait_s=0.05, queue_size=8)
        batcher.start()
        await asyncio.gather(*(batcher.submit("k", torch.zeros(3, 4, 4)) for _ in range(4)))
        await batcher.close(5)

    run(main())
    assert recorder.sizes == [1, 1, 1, 1]


def test_lone_request_waits_at_most_max_wait() -> None:
    async def main() -> float:
        batcher = DynamicBatcher(Recorder(), max_batch=8, max_wait_s=0.02, queue_size=8)
        batcher.start()
        started = time.perf_counter()
        await batcher.submit("k", torch.zeros(3, 4, 4))
        elapsed = time.perf_counter() - started
        await batcher.close(5)
        return elapsed

    assert run(main()) < 0.5


def test_full_queue_refuses_at_once_and_timeouts_free_their_place() -> None:
    recorder = Recorder(delay=0.3)

    async def main() -> None:
        batcher = DynamicBatcher(recorder, max_batch=1, max_wait_s=0.0, queue_size=2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit("k", torch.zeros(3, 4, 4)))
        await asyncio.sleep(0.05)  # the first job is computing; the queue is empty again
        waiting = [asyncio.ensure_future(batcher.submit("k", torch.zeros(3, 4, 4))) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        started = time.perf_counter()
        with pytest.raises(QueueFull):
            await batcher.submit("k", torch.zeros(3, 4, 4))
        assert time.perf_counter() - started < 0.05
        assert batcher.retry_after_s() >= 1
        waiting[0].cancel()  # a client timed out: its place is freed immediately
        await asyncio.sleep(0.01)
        assert batcher.depth == 1
        await asyncio.gather(running, waiting[1])
        await batcher.close(5)

    run(main())
    assert recorder.sizes == [1, 1]  # the cancelled job never ran


def test_failed_batch_fails_its_requests_and_the_worker_survives() -> None:
    calls = []

    def flaky(key: object, batch: torch.Tensor) -> torch.Tensor:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("backend exploded")
        return batch

    async def main() -> None:
        batcher = DynamicBatcher(flaky, max_batch=4, max_wait_s=0.0, queue_size=8)
        batcher.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.submit("bad", torch.zeros(3, 4, 4))
        assert (await batcher.submit("good", torch.ones(3, 4, 4))).sum() == 48
        await batcher.close(5)

    run(main())
    assert calls == ["bad", "good"]


def test_close_drains_queued_work_then_refuses_new() -> None:
    recorder = Recorder(delay=0.05)

    async def main() -> None:
        batcher = DynamicBatcher(recorder, max_batch=2, max_wait_s=0.0, queue_size=8)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit("k", torch.zeros(3, 4, 4))) for _ in range(5)]
        await asyncio.sleep(0)
        await batcher.close(5)
        assert all(job.done() and job.exception() is None for job in pending)
        with pytest.raises(BatcherClosed):
            await batcher.submit("k", torch.zeros(3, 4, 4))

    run(main())
    assert sum(recorder.sizes) == 5


@pytest.mark.parametrize(("height", "width"), [(37, 50), (40, 52), (5, 9), (16, 3), (100, 64)])
def test_bucket_padding_reproduces_the_network_run_alone(height: int, width: int) -> None:
    """Padding to the bucket like the network does, then cropping, changes nothing (instance norm included)."""
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1)).eval()
    image = torch.rand(3, height, width)
    bucket_h, bucket_w, mode = bucket_for(height, width)
    assert bucket_h % 4 == 0 and bucket_w % 4 == 0 and bucket_h >= 16 and bucket_w >= 16
    assert bucket_h - height < max(4, 16 - height + 1) and bucket_w - width < max(4, 16 - width + 1)
    companion = torch.rand(3, bucket_h, bucket_w)  # another image in the same batch
    with torch.inference_mode():
        alone = net(image.unsqueeze(0))[0]
        batch = torch.stack([pad_to(image, bucket_h, bucket_w, mode), companion])
        together = net(batch)[0, :, :height, :width]
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("fmt", "magic"), [("jpeg", b"\xff\xd8"), ("png", b"\x89PNG"), ("webp", b"RIFF")])
def test_encode_formats_and_alpha(fmt: str, magic: bytes) -> None:
    import io

    from PIL import Image

    rgb = Image.new("RGB", (20, 10), (10, 200, 30))
    alpha = Image.new("L", (40, 20), 128)  # the original's size: resized to the (downscaled) result
    data = encode_image(rgb, alpha, fmt, 90)  # type: ignore[arg-type]
    assert data.startswith(magic)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (20, 10)
    assert ("A" in decoded.getbands()) == (fmt != "jpeg")
