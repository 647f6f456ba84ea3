"""A multi-style model on the server: ``style`` and ``mix`` give the pixels of the equivalent single-style model,
/v1/models lists the styles, unknown names get one 422 line."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from multistyle_zoo import STYLES, build_zoo
from PIL import Image

from fastnst.server import create_app
from fastnst.server.settings import ServerSettings


def _noise_photo() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((48, 36), 60).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


PHOTO = _noise_photo()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    zoo = build_zoo(tmp_path_factory.mktemp("zoo"))
    with TestClient(create_app(ServerSettings(models=str(zoo), warmup=False, background_load=False))) as client:
        yield client


def _stylize(client: TestClient, **params: str) -> bytes:
    response = client.post("/v1/stylize", params={"format": "png", **params}, content=PHOTO,
                           headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    return response.content


def test_style_and_mix_equal_the_single_style_models(client: TestClient) -> None:
    assert _stylize(client, model="multi", style="night") == _stylize(client, model="night")
    assert _stylize(client, model="multi") == _stylize(client, model="wave")
    assert _stylize(client, model="multi", mix="wave=0.7,night=0.3") == _stylize(client, model="mix73")
    assert _stylize(client, model="multi", mix="wave=7,night=3") == _stylize(client, model="mix73")
    assert _stylize(client, model="wave", style="wave") == _stylize(client, model="wave")


def test_models_list_their_styles(client: TestClient) -> None:
    cards = {card["name"]: card for card in client.get("/v1/models").json()["models"]}
    assert [style["name"] for style in cards["multi"]["styles"]] == STYLES
    assert cards["multi"]["styles"][1]["image"] == "night.jpg"
    assert [style["name"] for style in cards["night"]["styles"]] == ["night"]


@pytest.mark.parametrize(("params", "words"), [
    ({"style": "sunset"}, ("no style 'sunset'", "wave, night")),
    ({"mix": "wave=1,sun=1"}, ("no style 'sun'",)),
    ({"mix": "wave"}, ("NAME=WEIGHT",)),
    ({"style": "wave", "mix": "night=1"}, ("not both",)),
])
def test_unknown_or_malformed_styles_are_refused(client: TestClient, params: dict[str, str],
                                                 words: tuple[str, ...]) -> None:
    response = client.post("/v1/stylize", params={"model": "multi", **params}, content=PHOTO,
                           headers={"content-type": "image/jpeg"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request" and all(word in body["detail"] for word in words), body
