"""Admission control: admit a stylize request only when the server can answer it within its deadline.

A request admitted and then timed out costs the server the full work and the client a 504 after a long wait; a
request refused at once costs nothing and tells the client when to come back. So every request is checked, once its
image header gives its size and before it is decoded, against what the server knows:

- the **service time per pixel** of each model, a moving estimate seeded by the model's warm-up run and updated
  from every measured batch (batches run one after another on one inference thread, so a batch's time divided by
  its pixels is the marginal cost of a pixel, batching gains included);
- the **work queued ahead**: the pixels of every request admitted and not yet answered, times their model's
  estimate;
- the **deadline** (``request_timeout_s``) and two memory bounds: the number of requests and the decoded pixels
  admitted at once.

A refusal carries ``Retry-After``: the seconds until enough of the work ahead has drained for this request to fit,
from the same estimate (rounded up, at least 1). Pure bookkeeping, no I/O: the app calls it on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

# The rest of a request (decode, colour controls, encode, the network's own padding) costs a share of its
# inference time; admission plans for it so that "admitted" keeps meaning "answered in time".
DEFAULT_HEADROOM = 1.5


class ServiceEstimate:
    """Seconds per pixel for each model: an exponential moving average of measured runs (thread-safe)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        self.smoothing = smoothing
        self._per_pixel: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: Hashable, seconds: float, pixels: int) -> None:
        """Fold one measured run (a batch of ``pixels`` pixels in total) into the model's estimate."""
        if pixels <= 0 or seconds <= 0:
            return
        sample = seconds / pixels
        with self._lock:
            previous = self._per_pixel.get(model)
            self._per_pixel[model] = sample if previous is None else (
                (1 - self.smoothing) * previous + self.smoothing * sample)

    def seconds_per_pixel(self, model: Hashable) -> float | None:
        """The model's estimate; a model not yet measured borrows the slowest measured one (None: nothing yet)."""
        with self._lock:
            if model in self._per_pixel:
                return self._per_pixel[model]
            return max(self._per_pixel.values(), default=None)

    def seconds(self, model: Hashable, pixels: int) -> float:
        per_pixel = self.seconds_per_pixel(model)
        return 0.0 if per_pixel is None else per_pixel * pixels


@dataclass(eq=False)
class Ticket:
    """One admitted request; hand it back with :meth:`AdmissionController.release` when it is answered."""

    model: Hashable
    pixels: int
    released: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused, and when to retry (whole seconds, at least 1)."""

    reason: str  # "deadline", "pixels" or "queue_full" (the request count): the metrics label
    message: str
    retry_after_s: int


@dataclass
class AdmissionController:
    """Admits requests against the deadline, the request count and the decoded-pixel budget (see module doc)."""

    timeout_s: float
    max_requests: int
    max_pixels: int
    estimate: ServiceEstimate = field(default_factory=ServiceEstimate)
    headroom: float = DEFAULT_HEADROOM
    _tickets: list[Ticket] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self._tickets)

    @property
    def pixels(self) -> int:
        return sum(ticket.pixels for ticket in self._tickets)

    def backlog_s(self) -> float:
        """Estimated seconds of inference for every request admitted and not yet answered."""
        return sum(self.estimate.seconds(ticket.model, ticket.pixels) for ticket in self._tickets)

    def admit(self, model: Hashable, pixels: int) -> Ticket | Refusal:
        """A :class:`Ticket` when the request fits; else a :class:`Refusal` (nothing is reserved)."""
        if self.requests >= self.max_requests:
            wait = self._drain_s(self.requests - self.max_requests + 1)
            return Refusal("queue_full", f"server busy: {self.requests} requests in progress", _whole(wait))
        if pixels > self.max_pixels:
            own = self.estimate.seconds(model, pixels) * self.headroom
            return Refusal("pixels", f"the image ({pixels} pixels to process) exceeds this server's memory budget "
                                     f"of {self.max_pixels} pixels", _whole(own))
        if self.pixels + pixels > self.max_pixels:
            wait = self._drain_pixels_s(self.pixels + pixels - self.max_pixels)
            return Refusal("pixels", f"server busy: {self.pixels} pixels in progress (budget {self.max_pixels})",
                           _whole(wait))
        own = self.estimate.seconds(model, pixels)
        ahead = self.backlog_s()
        if (ahead + own) * self.headroom > self.timeout_s:
            if own * self.headroom > self.timeout_s:
                return Refusal("deadline", f"this image would take about {own * self.headroom:.0f} s, more than "
                                           f"the {self.timeout_s:g} s limit; send a smaller one",
                               _whole(ahead))
            # Wait until enough of the work ahead has drained for this request to fit in the deadline.
            wait = ahead + own - self.timeout_s / self.headroom
            return Refusal("deadline", f"server busy: about {ahead * self.headroom:.0f} s of work queued ahead, "
                                       f"more than the {self.timeout_s:g} s limit allows", _whole(wait))
        ticket = Ticket(model, pixels)
        self._tickets.append(ticket)
        return ticket

    def release(self, ticket: Ticket) -> None:
        """The request was answered (or failed, or its client left): free its place. Idempotent."""
        if not ticket.released:
            ticket.released = True
            self._tickets.remove(ticket)

    def _drain_s(self, count: int) -> float:
        """Estimated time for the oldest ``count`` admitted requests to finish (they are served in order)."""
        return sum(self.estimate.seconds(t.model, t.pixels) for t in self._tickets[:count])

    def _drain_pixels_s(self, pixels: int) -> float:
        """Estimated time until the oldest admitted requests free at least ``pixels`` pixels."""
        seconds, freed = 0.0, 0
        for ticket in self._tickets:
            if freed >= pixels:
                break
            seconds += self.estimate.seconds(ticket.model, ticket.pixels)
            freed += ticket.pixels
        return seconds


def _whole(seconds: float) -> int:
    """Seconds for a Retry-After header: rounded up, at least 1."""
    return max(1, math.ceil(seconds))


class PixelGate:
    """A first-come, first-served budget of decoded pixels: admitted requests decode only when they fit.

    Admission lets in as much work as the deadline allows; most of it waits as compressed bytes. The gate lets a
    request decode (and hold its float tensors) only while the images decoded and not yet answered stay within
    ``capacity`` pixels, so memory follows the work the network can actually take, not the length of the queue.
    An image larger than the whole capacity passes alone. Use it on one event loop.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _fits(self, pixels: int) -> bool:
        return self.in_use == 0 or self.in_use + pixels <= self.capacity

    async def acquire(self, pixels: int) -> None:
        """Wait (in arrival order) until ``pixels`` fit; cancelling the wait gives up the place in line."""
        if not self._waiters and self._fits(pixels):
            self.in_use += pixels
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (pixels, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as it was cancelled: hand it on
                self.release(pixels)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            pixels, waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += pixels
                waiter.set_result(None)
