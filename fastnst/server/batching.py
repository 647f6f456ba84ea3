"""Dynamic batching: concurrent requests for the same model and compatible size run as one network call.

Requests wait in a bounded in-memory queue. A single worker takes the oldest waiting request, lets up to
``max_wait`` pass for others with the same key to arrive (TorchServe's ``max_batch_delay``, Triton's
``max_queue_delay``), and runs them as one batch on a dedicated inference thread, so the event loop stays free to
answer health checks while the network computes. While one batch runs, new requests accumulate and form the next
batch at once: under load batches fill up by themselves, when idle a request waits at most ``max_wait``.

Only images of the same padded size may share a batch. The network pads every input on the right and bottom to a
multiple of 4 (at least 16) before its first layer; padding each image to that size here, exactly as the network
would, and cropping the result back gives the same output as running it alone. Padding to any *larger* size would
not: instance normalisation (Ulyanov et al. 2016) computes its statistics over the whole padded plane, so extra
padding shifts every pixel's colour. Sizes are therefore bucketed to the network's own granularity and no further.

Work nobody waits for is not done: a job whose caller was cancelled (its client left, or its request timed out)
or whose deadline has passed is dropped when a batch is built, so a batch computes only for callers still waiting.
A batch's pixels are capped as well as its image count: on a CPU the network's working memory grows with the
pixels it holds at once, and larger batches gain nothing there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fastnst.model.transformer import MIN_INTERNAL_SIDE, SIZE_MULTIPLE

_RELEASED = torch.empty(0)

RunBatch = Callable[[Hashable, torch.Tensor], torch.Tensor]
"""(key, batch [N, 3, H, W]) -> stylized batch of the same shape; called on the inference thread."""


class QueueFull(Exception):
    """The queue holds ``queue_size`` requests already; the caller should answer 503 at once."""


class BatcherClosed(Exception):
    """The server is shutting down and accepts no new work."""


class DeadlineExpired(Exception):
    """The job's deadline passed before its batch started; it was dropped without computing."""


def bucket_for(height: int, width: int) -> tuple[int, int, str]:
    """The padded size and padding mode the network would use for an image of this size (see module doc)."""
    pad_h = max(MIN_INTERNAL_SIDE - height, (-height) % SIZE_MULTIPLE)
    pad_w = max(MIN_INTERNAL_SIDE - width, (-width) % SIZE_MULTIPLE)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return height + pad_h, width + pad_w, mode


def pad_to(image: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """Pad [3, h, w] on the right and bottom to [3, height, width]."""
    pad_h, pad_w = height - image.shape[-2], width - image.shape[-1]
    if not (pad_h or pad_w):
        return image
    return F.pad(image.unsqueeze(0), (0, pad_w, 0, pad_h), mode=mode)[0]


@dataclass(eq=False)
class _Job:
    key: Hashable
    image: torch.Tensor  # [3, H, W], already padded to the key's size
    future: asyncio.Future[torch.Tensor]
    deadline: float | None = None  # time.monotonic() after which nobody waits for the result
    enqueued: float = field(default_factory=time.monotonic)
    taken: bool = False

    @property
    def pixels(self) -> int:
        return int(self.image.shape[-2] * self.image.shape[-1])


class DynamicBatcher:
    """Bounded queue + one worker task + one inference thread. Create and use it inside a running event loop."""

    def __init__(self, run_batch: RunBatch, *, max_batch: int, max_wait_s: float, queue_size: int,
                 max_batch_pixels: int | None = None, on_batch: Callable[[int, float], None] | None = None,
                 on_run: Callable[[Hashable, int, float], None] | None = None,
                 on_drop: Callable[[str], None] | None = None) -> None:
        """``on_batch(images, seconds)`` and ``on_run(key, pixels, seconds)`` after each batch (inference time);
        ``on_drop(reason)`` for each job dropped unrun ("cancelled" or "expired")."""
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch and queue_size must be at least 1 and max_wait_s not negative")
        if max_batch_pixels is not None and max_batch_pixels < 1:
            raise ValueError("max_batch_pixels must be at least 1")
        self.max_batch = max_batch
        self.max_batch_pixels = max_batch_pixels
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._run_batch = run_batch
        self._on_batch = on_batch
        self._on_run = on_run
        self._on_drop = on_drop
        self._queues: dict[Hashable, collections.deque[_Job]] = {}
        self._depth = 0
        self._running = 0  # images in the batch now computing
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: batches run one after another, each using all of PyTorch's intra-op threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastnst-inference")
        self._seconds_per_image = 0.0  # moving average, for Retry-After estimates

    # ----------------------------------------------------------------------------------------------- state
    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not counting the batch now computing)."""
        return self._depth

    @property
    def busy(self) -> int:
        """Requests waiting plus those in the batch now computing."""
        return self._depth + self._running

    def retry_after_s(self) -> int:
        """A client's fair wait before retrying: the time to work off the current backlog, 1 to 60 s."""
        estimate = self.busy * self._seconds_per_image
        return int(min(60, max(1, round(estimate + 0.5))))

    # ----------------------------------------------------------------------------------------------- API
    def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._worker is None:
            self._wakeup = asyncio.Event()
            self._idle = asyncio.Event()
            self._idle.set()
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="fastnst-batcher")

    async def submit(self, key: Hashable, image: torch.Tensor, *, deadline: float | None = None) -> torch.Tensor:
        """Queue one padded image [3, H, W] under ``key``; returns its stylized [3, H, W].

        Raises QueueFull at once when the queue is full and BatcherClosed after :meth:`close`. Cancelling the
        awaiting task (a timeout, a client gone) removes the request from the queue if its batch has not started;
        past ``deadline`` (``time.monotonic()``) it is dropped unrun and DeadlineExpired is raised.
        """
        if self._closing or self._worker is None:
            raise BatcherClosed("the server is shutting down")
        if self._depth >= self.queue_size:
            raise QueueFull(f"{self._depth} requests are already waiting")
        job = _Job(key, image, asyncio.get_running_loop().create_future(), deadline)
        self._queues.setdefault(key, collections.deque()).append(job)
        self._depth += 1
        assert self._wakeup is not None and self._idle is not None
        self._idle.clear()
        self._wakeup.set()
        try:
            return await job.future
        finally:
            if not job.taken:  # cancelled or timed out while waiting: free its place now
                self._queues[key].remove(job)
                self._depth -= 1
                self._update_idle()
            job.image = _RELEASED  # the caller holds its own reference while it needs one

    async def close(self, timeout_s: float) -> None:
        """Stop accepting work, let queued and running batches finish (up to ``timeout_s``), stop the worker."""
        self._closing = True
        if self._worker is None:
            self._executor.shutdown(wait=False)
            return
        assert self._idle is not None and self._wakeup is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        for queue in self._queues.values():  # only left over when draining timed out
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(BatcherClosed("the server shut down before this request ran"))
        self._executor.shutdown(wait=False)

    # ----------------------------------------------------------------------------------------------- worker
    def _update_idle(self) -> None:
        if self._depth == 0 and self._running == 0 and self._idle is not None:
            self._idle.set()

    def _oldest_key(self) -> Hashable | None:
        # Drop emptied queues here, in the worker only, so a deque never vanishes under a waiting submit().
        self._queues = {key: queue for key, queue in self._queues.items() if queue}
        heads = [(queue[0].enqueued, index, key) for index, (key, queue) in enumerate(self._queues.items())]
        return min(heads)[2] if heads else None

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            key = self._oldest_key()
            if key is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            queue = self._queues[key]
            self._drop_departed(queue)
            if not queue:
                continue
            deadline = queue[0].enqueued + self.max_wait_s
            while not self._full(queue) and (remaining := deadline - time.monotonic()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            self._drop_departed(queue)
            if not queue:  # every waiting request for this key was cancelled meanwhile
                continue
            jobs = self._take(queue)
            self._depth -= len(jobs)
            self._running = len(jobs)
            try:
                await self._run(loop, key, jobs)
            finally:
                self._running = 0
                self._update_idle()

    def _drop_departed(self, queue: collections.deque[_Job]) -> None:
        """Remove jobs nobody waits for any more: the caller was cancelled, or the deadline has passed."""
        now = time.monotonic()
        for job in list(queue):
            if job.future.done():
                reason = "cancelled"
            elif job.deadline is not None and now >= job.deadline:
                reason = "expired"
                job.future.set_exception(DeadlineExpired("the request's deadline passed before it could run"))
            else:
                continue
            queue.remove(job)
            job.taken = True  # its submit() must not remove it a second time
            self._depth -= 1
            if self._on_drop is not None:
                self._on_drop(reason)
        self._update_idle()

    def _full(self, queue: collections.deque[_Job]) -> bool:
        if len(queue) >= self.max_batch:
            return True
        return self.max_batch_pixels is not None and sum(job.pixels for job in queue) >= self.max_batch_pixels

    def _take(self, queue: collections.deque[_Job]) -> list[_Job]:
        """The oldest jobs that fit one batch: up to ``max_batch`` images and ``max_batch_pixels`` (at least one)."""
        jobs: list[_Job] = []
        pixels = 0
        while queue and len(jobs) < self.max_batch:
            if jobs and self.max_batch_pixels is not None and pixels + queue[0].pixels > self.max_batch_pixels:
                break
            job = queue.popleft()
            job.taken = True
            pixels += job.pixels
            jobs.append(job)
        return jobs

    async def _run(self, loop: asyncio.AbstractEventLoop, key: Hashable, jobs: list[_Job]) -> None:
        batch = torch.stack([job.image for job in jobs])  # [N, 3, H, W]
        pixels = sum(job.pixels for job in jobs)
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._executor, self._run_batch, key, batch)
            if tuple(result.shape) != tuple(batch.shape):
                raise RuntimeError(f"backend returned shape {list(result.shape)} for input {list(batch.shape)}")
        except Exception as exc:  # noqa: BLE001 - a failed batch fails its requests, never the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        per_image = seconds / len(jobs)
        self._seconds_per_image = per_image if not self._seconds_per_image else (
            0.8 * self._seconds_per_image + 0.2 * per_image)
        if self._on_batch is not None:
            self._on_batch(len(jobs), seconds)
        if self._on_run is not None:
            self._on_run(key, pixels, seconds)
        del batch
        for job, output in zip(jobs, result, strict=False):
            if not job.future.done():  # the request may have timed out meanwhile
                job.future.set_result(output.clone())  # its own storage: the batch's is freed with the last

