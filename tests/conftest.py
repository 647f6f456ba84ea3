"""Shared fixtures: where the real data lives, tiny images, and a small seeded network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))
VGG_DIR = SHARED_DATA / "vgg"


def _have_shared() -> bool:
    return (VGG_DIR / "vgg16_features.pth").is_file() and (SHARED_DATA / "photos").is_dir()


requires_shared = pytest.mark.skipif(
    not _have_shared(), reason=f"real photos and VGG weights not found under {SHARED_DATA} (set FASTNST_SHARED_DATA)"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test touches the user's caches or downloads anything; real weights come from ../shared/data."""
    monkeypatch.setenv("FASTNST_CACHE", str(tmp_path_factory.getbasetemp() / "fastnst-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))
    if VGG_DIR.is_dir():
        monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(VGG_DIR))
    else:
        monkeypatch.delenv("FASTNST_VGG_WEIGHTS", raising=False)
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_data() -> Path:
    if not _have_shared():
        pytest.skip(f"real photos and VGG weights not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A small folder of synthetic but textured photos (works without ../shared/data)."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for index in range(6):
        h, w = 80 + 8 * index, 96 + 4 * index
        base = torch.rand(3, 1, 1, generator=gen)
        noise = torch.rand(3, h, w, generator=gen) * 0.5
        array = ((base * 0.5 + noise).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        target = folder / ("nested" if index % 2 else "") / f"photo{index}.jpg"
        Image.fromarray(array).save(target, quality=90)
    return folder


def make_image(path: Path, size: tuple[int, int] = (48, 40), color: tuple[int, int, int] = (200, 120, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding one tiny seeded network, ``tiny`` (the server tests serve it)."""
    from fastnst.model.files import save_model
    from fastnst.model.transformer import TransformerNet, TransformerSpec

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), root / "tiny", {"style_name": "tiny"})
    return root


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A model folder with a tiny seeded network (8 channels, one residual block): fast, and deterministic."""
    from fastnst.model.files import save_model
    from fastnst.model.transformer import TransformerNet, TransformerSpec

    torch.manual_seed(0)
    folder = tmp_path / "tiny_model"
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), folder,
               {"style_name": "tiny", "style_image": "tiny.jpg"})
    return folder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 40×30 noise photo as JPEG, in its own input folder."""
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.effect_noise((40, 30), 50).convert("RGB").save(path, quality=90)
    return path


def tiny_train_overrides(shared: Path, out: Path, **extra: object) -> dict[str, object]:
    """Config values for a small seeded network on small crops of the real photos: seconds per run on two cores."""
    values: dict[str, object] = {
        "style_image": str(shared / "styles/van_gogh_starry_night.jpg"), "data_dir": str(shared / "photos"),
        "style_size": 128, "width": 8, "residual_blocks": 1, "image_size": 64, "batch_size": 2, "steps": 24,
        "checkpoint_every": 4, "log_every": 4, "preview_every": 0, "num_workers": 0, "tensorboard": False,
        "output_dir": str(out), "seed": 1,
    }
    values.update(extra)
    return values


def assert_one_clear_line(code: int, err: str, *words: str) -> None:
    """Exit status 1 and exactly one ``fastnst: error:`` line holding every word, no traceback."""
    assert code == 1, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastnst: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance for the whole test session (its start-up takes tens of seconds on a loaded 2-core
    machine), with bounded logical CPUs; the Ray Serve and Ray Data tests share it."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install \"fastnst[ray]\")")
    os.environ.setdefault("RAY_SERVE_HTTP_REQUEST_TIMEOUT_S", "120")
    # Ray Serve gives a starting proxy 5 s to report ready and replaces it after three misses, which a starved
    # machine can fail while the proxy is still importing; the cluster's processes inherit these from here.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()
