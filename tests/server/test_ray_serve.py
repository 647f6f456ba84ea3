"""``fastnst serve --ray``: the same app as Ray Serve replicas, deployed by the CLI onto the session's local Ray
instance; what clients see equals a plain server; a killed replica costs only its requests in flight."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, assert_one_clear_line
from PIL import Image

pytest.importorskip("ray", reason="Ray is not installed (pip install \"fastnst[ray]\")")

from fastnst.server import create_app
from fastnst.server.settings import ServerSettings
from fastnst.server.testing import BackgroundServer

pytestmark = pytest.mark.ray
API_KEY = "ray-test-key"
READY_TIMEOUT_S = 240  # replica start-up on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastnst.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "FASTNST_API_KEY": API_KEY})


def _photo_bytes(size: tuple[int, int] = (72, 56)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _wait_ready(url: str, replicas: int, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/readyz", timeout=10)
            body = response.json()
            if response.status_code == 200 and body["cluster"]["replicas"].get("RUNNING") == replicas \
                    and len(body["cluster"]["replicas"]) == 1:
                return body
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(1.0)
    raise AssertionError(f"not {replicas} running replicas after {timeout_s} s: {body}")


@pytest.fixture(scope="module")
def deployed(ray_instance: Any, models_dir: Path) -> Iterator[str]:
    """``fastnst serve --ray --address … --replicas 2`` run as a user would; removed with ``--stop`` after."""
    address = ray_instance.get_runtime_context().gcs_address
    port = _free_port()
    done = _cli("-q", "serve", "--ray", "--address", address, "--replicas", "2", "--replica-cpus", "0.5",
                "--models", str(models_dir), "--port", str(port), "--max-batch", "2", "--warmup")
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, 2)
        yield url
    finally:
        stopped = _cli("serve", "--ray", "--address", address, "--stop")
        from ray import serve

        serve.shutdown()  # the HTTP proxy too, so the instance is free for the other Ray tests
        assert stopped.returncode == 0 and "removed" in stopped.stdout, stopped.stderr[-2000:]


def _plain_server_answers(models_dir: Path, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    settings = ServerSettings(models=str(models_dir), max_batch=2, api_key=API_KEY)
    with BackgroundServer(create_app(settings)) as server:
        httpx.get(server.url + "/readyz", timeout=60)
        deadline = time.monotonic() + 120
        while httpx.get(server.url + "/readyz", timeout=60).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        return [httpx.request(method, server.url + path, timeout=120, **kwargs) for method, path, kwargs in calls]


def test_replicas_answer_like_the_plain_server(deployed: str, models_dir: Path) -> None:
    headers = {"X-API-Key": API_KEY}
    photo = _photo_bytes()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/stylize?model=tiny&format=png", {"files": {"image": ("p.png", photo)}, "headers": headers}),
        ("POST", "/v1/stylize?model=tiny", {"files": {"image": ("p.png", b"not an image")}, "headers": headers}),
        ("POST", "/v1/stylize?model=nope", {"files": {"image": ("p.png", photo)}, "headers": headers}),
        ("POST", "/v1/stylize?model=tiny", {"files": {"image": ("p.png", photo)}}),  # no key
        ("GET", "/v1/models", {"headers": headers}),
    ]
    on_ray = [httpx.request(method, deployed + path, timeout=120, **kwargs) for method, path, kwargs in calls]
    plain = _plain_server_answers(models_dir, calls)
    for (method, path, _), ray_answer, plain_answer in zip(calls, on_ray, plain, strict=True):
        assert ray_answer.status_code == plain_answer.status_code, (method, path, ray_answer.text)
        assert ray_answer.headers["content-type"] == plain_answer.headers["content-type"], path
        if ray_answer.headers["content-type"] == "image/png":
            assert ray_answer.content == plain_answer.content  # the same pixels, byte for byte
        else:
            assert ray_answer.json() == plain_answer.json(), path
    assert on_ray[0].status_code == 200 and on_ray[1].status_code == 415 and on_ray[3].status_code == 401
    assert httpx.get(deployed + "/", timeout=30).headers["content-type"].startswith("text/html")
    assert "fastnst_http_requests_total" in httpx.get(deployed + "/metrics", timeout=30).text


def _replica_pids(ray_module: Any) -> dict[str, int]:
    """Replica actor name → worker PID, from the actor table (the dashboard is off in tests)."""
    pids = {}
    for info in ray_module._private.state.actors().values():  # noqa: SLF001 - no public PID lookup without it
        if info["State"] == "ALIVE" and info["Name"].startswith("SERVE_REPLICA::fastnst#"):
            pids[info["Name"]] = info["Pid"]
    return pids


def test_a_killed_replica_costs_only_its_requests_in_flight(deployed: str, ray_instance: Any) -> None:
    photo = _photo_bytes((96, 80))
    clients = 3
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def steady_load() -> None:
        with httpx.Client(timeout=120, headers={"X-API-Key": API_KEY}) as client:
            while not stop.is_set():
                try:
                    status = client.post(deployed + "/v1/stylize?model=tiny",
                                         files={"image": ("p.png", photo)}).status_code
                except httpx.HTTPError:
                    status = -1
                results.append((time.monotonic(), status))

    threads = [threading.Thread(target=steady_load, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    pids = _replica_pids(ray_instance)
    assert len(pids) == 2, pids
    victim = sorted(pids)[0]
    killed_at = time.monotonic()
    os.kill(pids[victim], signal.SIGKILL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (len(alive := _replica_pids(ray_instance)) == 2 and victim not in alive):  # Ray starts a new one
        assert time.monotonic() < deadline, f"the killed replica was not replaced: {alive}"
        time.sleep(0.5)
    during = _wait_ready(deployed, 2)  # and /readyz shows two running again
    recovered_at = time.monotonic()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(150)

    before = [status for at, status in results if at < killed_at]
    after = [status for at, status in results if at >= killed_at]
    failed = [status for status in after if status != 200]
    print(f"replica killed under load: {len(before)} answered before, {len(after)} after, {len(failed)} failed "
          f"({sorted(set(failed))}), replaced and two replicas running again after {recovered_at - killed_at:.1f} s")
    assert before and set(before) == {200}, before
    # Only the requests in flight on the killed replica may fail: at most one per client.
    assert len(failed) <= clients, failed
    assert sum(1 for at, status in results if killed_at < at < recovered_at and status == 200) > 0, \
        "the surviving replica stopped answering while the other restarted"
    assert [status for at, status in results if at > recovered_at] and \
        {status for at, status in results if at > recovered_at} == {200}
    assert during["cluster"]["status"] == "HEALTHY"


def test_serve_config_file_deploys_the_same_app(ray_instance: Any, models_dir: Path, tmp_path: Path) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from fastnst.server.ray_serve import application

    target = tmp_path / "serve.yaml"
    done = _cli("serve", "--ray", "--models", str(models_dir), "--autoscale", "1,3", "--queue-size", "4",
                "--write-config", str(target))
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(target.read_text())
    ServeDeploySchema(**config)  # what `serve deploy` and KubeRay validate
    args = config["applications"][0]["args"]
    assert args["models"] == str(models_dir) and args["autoscale"] == [1, 3] and "api_key" not in args
    deployment = application(args)._bound_deployment  # noqa: SLF001 - the options Ray will use
    assert deployment._deployment_config.autoscaling_config.max_replicas == 3  # noqa: SLF001
    assert deployment._deployment_config.max_ongoing_requests == 4 + 8  # noqa: SLF001 - queue_size + probes
    assert deployment._deployment_config.max_queued_requests == (4 + 8) * 3  # noqa: SLF001 - × most replicas


def test_ray_flags_are_checked(tmp_path: Path) -> None:
    done = _cli("serve", "--stop", "--address", "auto")
    assert_one_clear_line(done.returncode, done.stderr, "--address, --stop", "--ray")
    done = _cli("serve", "--ray", "--autoscale", "3", "--write-config", str(tmp_path / "x.yaml"))
    assert_one_clear_line(done.returncode, done.stderr, "MIN,MAX")
    assert not (tmp_path / "x.yaml").exists()


def test_without_ray_the_flag_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastnst.utils.errors import FastNSTError
    from fastnst.utils.ray_cluster import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(FastNSTError, match=r'pip install "fastnst\[ray\]"'):
        require_ray()


def test_an_overloaded_replica_refuses_with_the_servers_json(deployed: str, models_dir: Path) -> None:
    """Redeployed with queue_size 1: each replica admits one stylize request; the others of a burst of 16 reach a
    replica (Ray's queue and max_ongoing_requests leave room) and get fastnst's own 503 JSON with Retry-After."""
    from fastnst.server.ray_serve import Replicas, deploy

    port = int(deployed.rsplit(":", 1)[1])
    settings = ServerSettings(models=str(models_dir), port=port, queue_size=1, max_batch=1, api_key=API_KEY)
    deploy(settings, Replicas(count=2, cpus=0.5), blocking=False)
    _wait_ready(deployed, 2)
    photo = _photo_bytes((640, 480))  # long enough to run that a burst overlaps on any machine

    def post(_: int) -> httpx.Response:
        return httpx.post(deployed + "/v1/stylize?model=tiny", files={"image": ("p.png", photo)},
                          headers={"X-API-Key": API_KEY}, timeout=120)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    statuses = sorted(answer.status_code for answer in answers)
    refused = [answer for answer in answers if answer.status_code == 503]
    assert 200 in statuses and refused, statuses
    for answer in refused:
        assert answer.json()["error"] == "overloaded" and int(answer.headers["retry-after"]) >= 1
