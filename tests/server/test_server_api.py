"""HTTP API tests: TestClient as a context manager (lifespan runs), tiny models written to tmp_path."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec

fastapi_testclient = pytest.importorskip("fastapi.testclient")
from fastnst.server import ServerSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def write_tiny_model(folder: Path, style_name: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), folder,
               {"style_name": style_name, "style_image": f"/secret/paintings/{style_name}.jpg",
                "config": {"data_dir": "/secret/photos"}, "steps": 3})
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_model(root / "alpha", "Alpha Style", seed=0)
    write_tiny_model(root / "beta", "beta", seed=1)
    return root


@pytest.fixture(scope="module")
def client(models_dir: Path):
    settings = ServerSettings(models=str(models_dir), background_load=False, device="cpu", max_body_bytes=200_000,
                              max_pixels=250_000, max_side=256, max_side_limit=512)
    with fastapi_testclient.TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def encode(size: tuple[int, int] = (40, 30), fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    color = (200, 90, 30, 120) if mode == "RGBA" else (200, 90, 30)
    image = Image.new(mode, size, color[: len(mode)])
    image.putpixel((1, 1), (0, 0, 0, 255)[: len(mode)])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code
    assert "Traceback" not in body["detail"] and "\n" not in body["detail"]
    return body


# --------------------------------------------------------------------------------------------------- probes


def test_health_ready_and_model_list(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": ["alpha", "beta"], "failed": {}}
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["alpha", "beta"]
    alpha = models[0]
    assert alpha["style"] == {"name": "Alpha Style", "image": "Alpha Style.jpg"}  # file name only, no server path
    assert alpha["backends"] == [{"name": "torch", "device": "cpu", "precision": "fp32"}]
    assert alpha["metadata"]["spec"] == {"width": 8, "residual_blocks": 1}
    assert alpha["metadata"]["steps"] == 3 and len(alpha["metadata"]["sha256"]) == 64
    assert "config" not in alpha["metadata"] and "/secret" not in str(models)
    thumb = client.get(alpha["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 128)
    assert_error(client.get("/v1/models/nope/thumbnail"), 404, "not_found")


def test_docs_page_and_static_files(client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn." not in docs.text  # works without internet access
    for asset in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text):
        assert client.get(asset).status_code == 200, asset
    assert len(re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text)) >= 2
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics", "/v1/models", "/v1/stylize"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "fastnst" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert_error(client.get("/static/../../settings.py"), 404, "not_found")


# --------------------------------------------------------------------------------------------------- stylize


def test_stylize_raw_body(client) -> None:
    response = client.post("/v1/stylize?model=alpha", content=encode((40, 30)),
                           headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-model"] == "alpha"
    assert 'filename="image-alpha.jpg"' in response.headers["content-disposition"]
    assert Image.open(io.BytesIO(response.content)).size == (40, 30)


def test_stylize_multipart_with_form_options(client) -> None:
    response = client.post("/v1/stylize", files={"file": ("my photo.png", encode((64, 48), "PNG"), "image/png")},
                           data={"model": "beta", "format": "webp", "max_side": "32", "preserve_color": "true"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert 'filename="my_photo-beta.webp"' in response.headers["content-disposition"]
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)  # downscaled to max_side


def test_strength_zero_returns_the_photo_and_alpha_is_kept(client) -> None:
    photo = encode((24, 20), "PNG", "RGBA")
    response = client.post("/v1/stylize?model=alpha&strength=0", content=photo)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    result = Image.open(io.BytesIO(response.content))
    assert result.mode == "RGBA"
    assert list(result.getdata()) == list(Image.open(io.BytesIO(photo)).getdata())


def test_default_model_only_when_unambiguous(client) -> None:
    body = assert_error(client.post("/v1/stylize", content=encode()), 422, "invalid_request")
    assert "alpha" in body["detail"] and "beta" in body["detail"]


def test_batched_result_matches_a_lone_request(client) -> None:
    """Same photo twice; bytes must be identical whether or not it shared a batch (deterministic model)."""
    photo = encode((33, 27), "PNG")
    first = client.post("/v1/stylize?model=beta&format=png", content=photo).content
    second = client.post("/v1/stylize?model=beta&format=png", content=photo).content
    assert first == second


# --------------------------------------------------------------------------------------------------- bad input


def test_unknown_model_is_404(client) -> None:
    body = assert_error(client.post("/v1/stylize?model=gogh", content=encode()), 404, "not_found")
    assert "available: alpha, beta" in body["detail"]


def test_body_size_limit_is_413(client) -> None:
    big = b"\xff\xd8" + b"\0" * 250_000
    assert_error(client.post("/v1/stylize?model=alpha", content=big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(30):
            yield b"\0" * 10_000

    assert_error(client.post("/v1/stylize?model=alpha", content=chunks()), 413, "payload_too_large")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_pixel_cap_is_413(client) -> None:
    body = assert_error(client.post("/v1/stylize?model=alpha", content=png_header_only(50_000, 50_000)),
                        413, "payload_too_large")
    assert "--max-pixels" not in body["detail"]
    assert_error(client.post("/v1/stylize?model=alpha", content=encode((600, 500), "PNG")), 413,
                 "payload_too_large")


@pytest.mark.parametrize(("payload", "content_type", "status", "code"), [
    (b"hello, not an image", "image/jpeg", 415, "unsupported_media_type"),
    (b'{"image": "x"}', "application/json", 415, "unsupported_media_type"),
    (b"", "image/jpeg", 400, "bad_request"),
    ("truncated", "image/jpeg", 400, "bad_request"),
    ("garbled", "image/png", 400, "bad_request"),
])
def test_not_an_image_or_corrupt(client, payload, content_type, status, code) -> None:
    if payload == "truncated":
        payload = encode((64, 64))[:300]
    elif payload == "garbled":
        good = encode((64, 64), "PNG")
        payload = good[:40] + bytes(b ^ 0x5A for b in good[40:])
    assert_error(client.post("/v1/stylize?model=alpha", content=payload, headers={"content-type": content_type}),
                 status, code)


def test_bad_multipart_uploads(client) -> None:
    assert_error(client.post("/v1/stylize?model=alpha", data={"strength": "0.5"},
                             files={"other": ("", b"", "text/plain")}), 400, "bad_request")
    assert_error(client.post("/v1/stylize?model=alpha", content=b"--xx\r\ngarbage",
                             headers={"content-type": "multipart/form-data; boundary=xx"}), 400, "bad_request")
    assert_error(client.post("/v1/stylize?model=alpha", content=b"x",
                             headers={"content-type": "multipart/form-data"}), 400, "bad_request")
    two = {"file": ("a.jpg", encode(), "image/jpeg"), "file2": ("b.jpg", encode(), "image/jpeg")}
    assert_error(client.post("/v1/stylize?model=alpha", files=two), 400, "bad_request")


@pytest.mark.parametrize("query", ["strength=1.5", "strength=abc", "max_side=4", "max_side=4096", "format=gif",
                                   "quality=0", "preserve_color=maybe"])
def test_invalid_options_are_422(client, query: str) -> None:
    assert_error(client.post(f"/v1/stylize?model=alpha&{query}", content=encode()), 422, "invalid_request")


def test_form_option_is_validated_too(client) -> None:
    response = client.post("/v1/stylize?model=alpha", files={"file": ("a.jpg", encode(), "image/jpeg")},
                           data={"strength": "-1"})
    assert "strength" in assert_error(response, 422, "invalid_request")["detail"]


def test_unknown_route_and_method(client) -> None:
    assert_error(client.get("/v2/everything"), 404, "not_found")
    assert_error(client.get("/v1/stylize"), 405, "method_not_allowed")
    assert_error(client.request("BREW", "/healthz"), 405, "method_not_allowed")


def test_hostile_model_names_are_escaped(client) -> None:
    body = assert_error(client.post("/v1/stylize", params={"model": "x\n<script>" + "a" * 500},
                                    content=encode()), 422, "invalid_request")  # over max_length
    body = assert_error(client.post("/v1/stylize", params={"model": "x\n<b>"}, content=encode()), 404, "not_found")
    assert "\n" not in body["detail"]


# --------------------------------------------------------------------------------------------------- metrics


def test_metrics_count_requests_batches_and_load_time(client) -> None:
    client.post("/v1/stylize?model=alpha", content=encode())
    client.get("/nothing/here/12345")
    text = client.get("/metrics").text
    assert 'fastnst_http_requests_total{method="POST",route="/v1/stylize",status="200"}' in text
    assert 'route="<unmatched>"' in text and "/nothing/here" not in text  # bounded label set
    assert "fastnst_http_request_duration_seconds_bucket" in text
    assert "fastnst_batch_size_bucket" in text and "fastnst_batch_size_count" in text
    assert "fastnst_queue_depth 0.0" in text
    assert 'fastnst_model_load_seconds{model="alpha"}' in text
    assert "fastnst_models_ready 2.0" in text


# --------------------------------------------------------------------------------------------------- access


def test_api_key_and_cors(models_dir: Path) -> None:
    settings = ServerSettings(models=str(models_dir), background_load=False, warmup=False, api_key="s3cret",
                              cors_origins=("https://example.org",))
    with fastapi_testclient.TestClient(create_app(settings)) as client:
        assert_error(client.get("/v1/models"), 401, "unauthorized")
        assert_error(client.get("/v1/models", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert_error(client.post("/v1/stylize?model=alpha", content=encode()), 401, "unauthorized")
        assert client.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        ok = client.post("/v1/stylize?model=alpha", content=encode(), headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200  # probes stay open for orchestrators
        assert client.get("/metrics").status_code == 200
        preflight = client.options("/v1/stylize", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://example.org"
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(client) -> None:
    response = client.get("/v1/models", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in response.headers


# --------------------------------------------------------------------------------------------------- loading


def test_broken_model_is_skipped_and_reported(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "good", "good")
    broken = write_tiny_model(tmp_path / "broken", "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    settings = ServerSettings(models=str(tmp_path), background_load=False, warmup=False)
    with fastapi_testclient.TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["models"] == ["good"]
        assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["good"]
        assert client.post("/v1/stylize", content=encode()).status_code == 200  # the one model is the default


def test_no_loadable_model_is_not_ready(tmp_path: Path) -> None:
    broken = write_tiny_model(tmp_path / "broken", "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    settings = ServerSettings(models=str(tmp_path), background_load=False)
    with fastapi_testclient.TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        body = assert_error(client.get("/readyz"), 503, "unavailable")
        assert "broken" in body["detail"]
        assert_error(client.post("/v1/stylize?model=broken", content=encode()), 404, "not_found")
