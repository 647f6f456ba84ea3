"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against a live server on
127.0.0.1 with two shipped models. Uploads a real photo, then drops another, and checks stylized images appear.

Chromium comes from the system (``apt-get install chromium``; Playwright never downloads a browser here), so the
test skips with a reason where it is missing.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FASTNST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
STYLES = ("starry_night", "great_wave")

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    missing = [name for name in STYLES if not (REPO / "models" / name / "model.safetensors").is_file()]
    if missing:
        pytest.skip(f"shipped models missing: {', '.join(missing)}")
    from fastnst.server import ServerSettings, create_app
    from fastnst.server.testing import BackgroundServer

    zoo = tmp_path_factory.mktemp("zoo")
    for name in STYLES:
        (zoo / name).symlink_to(REPO / "models" / name, target_is_directory=True)
    settings = ServerSettings(models=str(zoo), background_load=False, device="cpu", max_side=512)
    with BackgroundServer(create_app(settings)) as server:
        yield server.url


def test_upload_and_drop_a_photo_and_see_the_stylized_result(server_url: str) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # CSP too
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.set_default_timeout(60_000)
            page.goto(server_url + "/")

            # Styles appear as thumbnails; the first is chosen; pick the second.
            page.wait_for_function("() => [...document.querySelectorAll('.style img')]"
                                   ".filter(img => img.naturalWidth > 0).length === 2")
            first, chosen = (page.locator('.style[data-model="great_wave"]'),
                             page.locator('.style[data-model="starry_night"]'))
            assert first.get_attribute("aria-checked") == "true"  # sorted by name; the first is preselected
            chosen.click()
            assert chosen.get_attribute("aria-checked") == "true" and first.get_attribute("aria-checked") == "false"

            # Settings before the photo: small size (fast on a shared CPU), 80 % strength, keep colours.
            page.select_option("#max-side", "256")
            page.locator("#strength").evaluate(
                "el => { el.value = 80; el.dispatchEvent(new Event('input')); }")
            assert page.locator("#strength-value").inner_text() == "80%"
            page.locator("label.switch").click()
            assert page.locator("#preserve").is_checked()

            # Upload a real photo: the page stylizes it at once.
            with page.expect_response(lambda r: "/v1/stylize" in r.url) as upload:
                page.set_input_files("#file", str(REPO / "samples" / "castle.jpg"))
            response = upload.value
            assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
            for part in ("model=starry_night", "strength=0.8", "preserve_color=true", "max_side=256"):
                assert part in response.url
            page.wait_for_function("() => document.getElementById('result').naturalWidth > 0")
            assert page.locator("#result").is_visible()
            size = page.locator("#result").evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size == [256, 171]  # castle.jpg is 640×427
            assert page.locator("#status").inner_text().startswith("Done in")
            link = page.locator("#download")
            assert link.get_attribute("href").startswith("blob:")
            assert link.get_attribute("download") == "castle-starry_night.jpg"
            first_result = page.locator("#result").get_attribute("src")

            # Drop a second photo onto the drop zone.
            data = base64.b64encode((REPO / "samples" / "bison.jpg").read_bytes()).decode()
            transfer = page.evaluate_handle(
                """b64 => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                            const transfer = new DataTransfer();
                            transfer.items.add(new File([bytes], 'bison.jpg', {type: 'image/jpeg'}));
                            return transfer; }""", data)
            with page.expect_response(lambda r: "/v1/stylize" in r.url) as dropped:
                page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
            assert dropped.value.status == 200
            page.wait_for_function("src => { const img = document.getElementById('result');"
                                   " return img.src !== src && img.complete && img.naturalWidth > 0; }",
                                   arg=first_result)
            assert link.get_attribute("download") == "bison-starry_night.jpg"
        finally:
            browser.close()
    assert not problems, problems


def test_api_docs_render_without_internet(server_url: str) -> None:
    """/docs draws the API's operations from the server's own Swagger UI copy (no CDN is reachable here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(server_url + "/docs")
            page.wait_for_selector('[data-path="/v1/stylize"]', timeout=30_000)
            assert page.locator(".opblock").count() >= 5  # one block per documented route
        finally:
            browser.close()


def test_blend_two_styles_of_a_multi_style_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The blend controls show for a multi-style model only; the slider sends the mix, and the page shows the
    server's answer for it."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    import httpx
    from multistyle_zoo import build_zoo
    from playwright.sync_api import sync_playwright

    from fastnst.server import ServerSettings, create_app
    from fastnst.server.testing import BackgroundServer

    zoo = build_zoo(tmp_path_factory.mktemp("multistyle"))
    settings = ServerSettings(models=str(zoo), background_load=False, device="cpu", warmup=False)
    with BackgroundServer(create_app(settings)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.add_init_script("""const create = URL.createObjectURL; window.blobs = [];
                URL.createObjectURL = (blob) => { window.blobs.push(blob); return create(blob); };""")
            page.goto(server.url + "/")
            page.wait_for_selector('.style[data-model="multi"]')
            assert page.locator("#blend").is_hidden()  # the preselected model holds one style
            page.locator('.style[data-model="multi"]').click()
            assert page.locator("#blend").is_visible()
            assert page.locator("#style-a option").all_inner_texts() == ["wave", "night"]
            assert page.locator("#style-b").input_value() == "night"
            page.locator("#blend-amount").evaluate("el => { el.value = 30; el.dispatchEvent(new Event('input')); }")
            assert page.locator("#blend-value").inner_text() == "30%"
            with page.expect_response(lambda r: "/v1/stylize" in r.url) as upload:
                page.set_input_files("#file", str(REPO / "samples" / "castle.jpg"))
            response = upload.value
            assert response.status == 200, response.text()
            assert "model=multi" in response.url and "mix=wave%3D0.70%2Cnight%3D0.30" in response.url
            expected = httpx.post(server.url + "/v1/stylize", params={"model": "mix73", "max_side": "512"},
                                  files={"file": ("castle.jpg", (REPO / "samples" / "castle.jpg").read_bytes())},
                                  timeout=120)
            page.wait_for_function("() => document.getElementById('result').naturalWidth > 0")
            shown = page.evaluate("async () => Array.from(new Uint8Array(await window.blobs.at(-1).arrayBuffer()))")
            assert bytes(shown) == expected.content  # 70 % wave: the mix73 model's pixels
        finally:
            browser.close()
