"""Run a read → process → write stream with its three stages overlapped in threads.

Stylizing a video alternates FFmpeg decoding and encoding (which release the GIL) with the model, which runs on a
GPU or on torch's own threads. In one thread each stage waits for the other two; here the reader and the writer
each get a thread and the model runs in the caller's (so CUDA state and Ctrl-C stay where they were). Bounded
queues between the stages keep memory flat: at most ``depth`` items wait at each hand-over. Items keep their
order, a failure in any stage stops the others and is raised in the caller, and both threads are joined before
:func:`run_overlapped` returns or raises.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_END = object()  # the reader's last item, passed on to the writer
_POLL_S = 0.05  # how often a waiting stage looks whether another one failed


class _Stopped(Exception):
    """Another stage failed (or the caller was interrupted): leave without doing more."""


def _put(channel: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue
    raise _Stopped


def _get(channel: queue.Queue[Any], stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return channel.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    raise _Stopped


def run_overlapped(items: Iterable[T], process: Callable[[T], U], write: Callable[[U], None], *,
                   depth: int = 2, overlap: bool = True) -> None:
    """``write(process(item))`` for every item in order, with ``items`` iterated in one thread, ``write`` run in
    another and ``process`` in the caller's. ``overlap=False`` runs all three in the caller's thread, one item
    at a time (the same results, for comparison and debugging)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if not overlap:
        for item in items:
            write(process(item))
        return
    stop = threading.Event()
    errors: list[BaseException] = []
    to_process: queue.Queue[Any] = queue.Queue(maxsize=depth)
    to_write: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def read() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                _put(to_process, item, stop)
            _put(to_process, _END, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            errors.append(exc)
            stop.set()
        finally:
            close = getattr(iterator, "close", None)  # a generator's clean-up runs in the thread that ran it
            if close is not None:
                close()

    def drain() -> None:
        try:
            while (item := _get(to_write, stop)) is not _END:
                write(item)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            errors.append(exc)
            stop.set()

    reader = threading.Thread(target=read, name="fastnst-read", daemon=True)
    writer = threading.Thread(target=drain, name="fastnst-write", daemon=True)
    reader.start()
    writer.start()
    try:
        while (item := _get(to_process, stop)) is not _END:
            _put(to_write, process(item), stop)
        _put(to_write, _END, stop)
        while writer.is_alive() and not stop.is_set():  # let it finish what is queued
            writer.join(_POLL_S)
    except _Stopped:
        pass
    finally:
        stop.set()  # a failure here or Ctrl-C: the other stages stop at their next hand-over
        reader.join()
        writer.join()
    if errors:
        raise errors[0]
