"""The overlapped read → process → write stream: order, bounded hand-overs, failures from any stage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from fastnst.runtime.overlap import run_overlapped


@pytest.mark.parametrize("overlap", [True, False])
def test_every_item_is_written_once_in_order(overlap: bool) -> None:
    written: list[int] = []
    run_overlapped(range(200), lambda x: x * x, written.append, overlap=overlap)
    assert written == [x * x for x in range(200)]


def test_stages_run_in_their_own_threads_and_process_in_the_callers() -> None:
    seen: dict[str, set[str]] = {"read": set(), "process": set(), "write": set()}

    def items() -> Iterator[int]:
        for i in range(5):
            seen["read"].add(threading.current_thread().name)
            yield i

    def process(x: int) -> int:
        seen["process"].add(threading.current_thread().name)
        return x

    run_overlapped(items(), process, lambda x: seen["write"].add(threading.current_thread().name))
    assert seen == {"read": {"fastnst-read"}, "process": {threading.current_thread().name},
                    "write": {"fastnst-write"}}


def test_the_reader_runs_at_most_depth_items_ahead() -> None:
    """Bounded memory: with a stalled writer, the reader stops after a few items instead of reading everything."""
    produced: list[int] = []
    release = threading.Event()

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    def write(x: int) -> None:
        release.wait(5)

    worker = threading.Thread(target=run_overlapped, args=(items(), lambda x: x, write), kwargs={"depth": 2})
    worker.start()
    time.sleep(0.5)
    ahead = len(produced)
    release.set()
    worker.join(10)
    # one being written, two queued for writing, one being processed, two queued for it, one being put
    assert ahead <= 8
    assert len(produced) == 1000


@pytest.mark.parametrize("stage", ["read", "process", "write"])
def test_a_failing_stage_stops_the_others_and_its_error_reaches_the_caller(stage: str) -> None:
    written: list[int] = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(10_000):
                if stage == "read" and i == 30:
                    raise OSError("disk gone")
                yield i
        finally:
            closed.set()

    def process(x: int) -> int:
        if stage == "process" and x == 30:
            raise ValueError("bad frame")
        return x

    def write(x: int) -> None:
        if stage == "write" and x == 30:
            raise RuntimeError("encoder failed")
        written.append(x)

    expected = {"read": OSError, "process": ValueError, "write": RuntimeError}[stage]
    before = threading.active_count()
    with pytest.raises(expected):
        run_overlapped(items(), process, write)
    assert written == list(range(len(written))) and len(written) <= 30  # in order, nothing past the failure
    if stage == "write":
        assert len(written) == 30
    assert closed.is_set()  # the reader's generator was closed, so its clean-up ran
    assert threading.active_count() == before  # both threads were joined


def test_an_interrupt_in_the_caller_joins_both_threads() -> None:
    before = threading.active_count()

    def process(x: int) -> int:
        if x == 3:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        run_overlapped(iter(range(100)), process, lambda x: None)
    assert threading.active_count() == before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        run_overlapped([1], lambda x: x, print, depth=0)
