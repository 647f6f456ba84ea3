"""Video stylization: streamed frames, fps and audio kept, flicker reduction, clear errors, no partial files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.bench.flicker import plain_flicker, synthetic_clips
from fastnst.model.files import load_model
from fastnst.model.norm_stats import stat_norm_layers
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.runtime.color import Controls
from fastnst.runtime.video import TemporalBlend, flicker_ratio, model_stylizer, probe_video, stylize_video
from fastnst.utils.errors import VideoError

av = pytest.importorskip("av")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny frames: threads only add synchronisation


@pytest.fixture
def model() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1)).eval()
    for layer in stat_norm_layers(net):
        layer.weight.data.uniform_(0.5, 1.5)
        layer.bias.data.uniform_(-0.5, 0.5)
    return net


def make_video(path: Path, *, width: int = 64, height: int = 48, frames: int = 14, fps: int = 12,
               audio: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """A panning noise texture (and a 440 Hz tone), written with PyAV."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height + frames, width + frames, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[i : i + height, i : i + width]),
                                               format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            samples = 16000 * frames // fps
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start : start + 1024]), format="flt",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return path


def read_frames(path: Path) -> torch.Tensor:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        last = max(p.pts + (p.duration or 0) for p in container.demux(stream) if p.pts is not None)
        return float(last * stream.time_base)


def no_leftovers(folder: Path, allowed: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == allowed, "a partial or temporary file was left behind"


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_stylize_keeps_frames_fps_size_and_audio(tmp_path: Path, model: TransformerNet, suffix: str) -> None:
    source = make_video(tmp_path / "in.mp4")
    target = tmp_path / f"out{suffix}"
    batches: list[int] = []
    done: list[int] = []
    with model_stylizer(model) as stylize:
        def recording(batch: torch.Tensor) -> torch.Tensor:
            batches.append(batch.shape[0])
            return stylize(batch)

        stylize_video(source, target, recording, batch_size=4, progress=done.append)
    info = probe_video(target)
    assert (info.width, info.height, info.fps, info.has_audio) == (64, 48, Fraction(12), True)
    assert read_frames(target).shape[0] == 14 == sum(done)
    assert batches == [4, 4, 4, 2]  # streamed in batches, never the whole video at once
    assert audio_seconds(target) == pytest.approx(audio_seconds(source), abs=0.1)


def test_odd_sizes_and_silent_video(tmp_path: Path, model: TransformerNet) -> None:
    source = make_video(tmp_path / "odd.mkv", width=65, height=49, frames=5, audio=False, codec="ffv1",
                        pix_fmt="yuv444p")
    target = tmp_path / "out.avi"
    with model_stylizer(model) as stylize:
        stylize_video(source, target, stylize, batch_size=2, controls=Controls(0.5, "luminance"))
    info = probe_video(target)
    assert (info.width, info.height, info.has_audio) == (64, 48, False)  # yuv420p needs even sides
    assert read_frames(target).shape[0] == 5


class _Unchanged(torch.nn.Module):
    """A "stylizer" that returns its input: the output changes exactly as much as the input."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_synthetic_clips_are_a_noisy_still_a_pan_and_a_moving_object() -> None:
    made = synthetic_clips(REPO / "samples" / "castle.jpg", 64, 48, 8)
    assert list(made) == ["static", "pan", "object"]
    assert all(clip.shape == (8, 3, 48, 64) and clip.min() >= 0 and clip.max() <= 1 for clip in made.values())
    still = made["static"]
    assert 1 / 255 < float((still[1] - still[0]).abs().mean()) < 3 / 255  # sensor noise only
    pan = made["pan"]  # frame t+1 is frame t moved 2 px left, up to the noise
    moved = float((pan[1, ..., :-2] - pan[0, ..., 2:]).abs().mean())
    assert moved < 3 / 255 < float((pan[1] - pan[0]).abs().mean())
    assert torch.equal(synthetic_clips(REPO / "samples" / "castle.jpg", 64, 48, 8)["object"], made["object"])


def test_plain_flicker_of_an_unchanged_video_is_one_and_a_network_adds_its_own(model: TransformerNet) -> None:
    made = synthetic_clips(REPO / "samples" / "castle.jpg", 64, 48, 8)
    for margin in (0, 16):
        assert plain_flicker(_Unchanged(), made, margin) == {"static": 1.0, "pan": 1.0, "object": 1.0}
    bare, framed = plain_flicker(model, made, 0), plain_flicker(model, made, 16)
    assert bare.keys() == framed.keys() == made.keys() and bare != framed


def test_flicker_reduction_lowers_frame_to_frame_change() -> None:
    """Shipped model, real photo: the motion-gated blend (--flicker-reduction) damps the shimmer of a static
    noisy view and of a moving object; smoothed statistics help a little where an object shifts them."""
    model, _ = load_model(REPO / "models" / "starry_night", device="cpu")
    made = synthetic_clips(REPO / "samples" / "castle.jpg", 96, 72, 12)
    ratios: dict[tuple[str, str], float] = {}
    for name in ("static", "object"):
        clip = made[name]
        for label, smoothing, flicker in (("plain", 0.0, 0.0), ("stats", 0.9, 0.0), ("blend", 0.0, 0.8)):
            blend = TemporalBlend(flicker)
            with model_stylizer(model, smoothing=smoothing) as stylize:
                out = torch.cat([blend(clip[i : i + 4], stylize(clip[i : i + 4])) for i in range(0, 12, 4)])
            ratios[name, label] = flicker_ratio(clip, out)
    print("flicker ratio (output change / input change):",
          {f"{k[0]}/{k[1]}": round(v, 3) for k, v in ratios.items()})
    for name in ("static", "object"):
        assert ratios[name, "blend"] < 0.8 * ratios[name, "plain"]
    assert ratios["object", "stats"] < ratios["object", "plain"]


def test_temporal_blend_follows_motion() -> None:
    """Where the input changes a lot, the new frame wins (no ghost); where it is still, the old output stays."""
    blend = TemporalBlend(0.8)
    inputs = torch.zeros(2, 3, 4, 4)
    inputs[1, :, :2] = 1.0  # the top half changes completely
    outputs = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    result = blend(inputs, outputs)
    assert torch.allclose(result[1, :, :2], torch.ones(3, 2, 4), atol=1e-4)  # moved: new output
    assert torch.allclose(result[1, :, 2:], torch.full((3, 2, 4), 0.2))  # still: 80 % of the old output
    with pytest.raises(VideoError, match="between 0"):
        TemporalBlend(1.0)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50, "truncated"])
def test_corrupt_input_gives_one_line_and_no_output(tmp_path: Path, model: TransformerNet,
                                                    content: bytes | str) -> None:
    source = tmp_path / "bad.mp4"
    if content == "truncated":
        good = make_video(tmp_path / "good.mp4").read_bytes()
        (tmp_path / "good.mp4").unlink()
        source.write_bytes(good[: len(good) // 2])
    else:
        source.write_bytes(content)  # type: ignore[arg-type]
    target = tmp_path / "out.mp4"
    with model_stylizer(model) as stylize, pytest.raises(VideoError) as error:
        stylize_video(source, target, stylize)
    message = str(error.value)
    assert "\n" not in message and "bad.mp4" in message
    no_leftovers(tmp_path, {"bad.mp4"})


def test_unsupported_inputs_and_outputs(tmp_path: Path, model: TransformerNet) -> None:
    audio_only = tmp_path / "sound.mkv"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        for packet in list(stream.encode(chunk)) + list(stream.encode(None)):
            container.mux(packet)
    with model_stylizer(model) as stylize:
        with pytest.raises(VideoError, match="no video stream"):
            stylize_video(audio_only, tmp_path / "out.mp4", stylize)
        with pytest.raises(VideoError, match="unknown extension '.xyz'"):
            stylize_video(make_video(tmp_path / "in.mp4", frames=2), tmp_path / "out.xyz", stylize)
        with pytest.raises(VideoError, match="does not exist"):
            stylize_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", stylize)
    no_leftovers(tmp_path, {"sound.mkv", "in.mp4"})


# ------------------------------------------------------------------------------------------- command line


@pytest.fixture
def tiny_model_dir(tmp_path: Path, model: TransformerNet) -> Path:
    from fastnst.model.files import save_model

    folder = tmp_path / "tiny_model"
    save_model(model, folder, {"style_name": "tiny"})
    return folder


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from fastnst.cli import main

    code = main(["stylize", *args])
    return code, capsys.readouterr().err


def test_cli_stylizes_a_video(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_video(tmp_path / "in.mp4")
    target = tmp_path / "out" / "styled.mov"
    code, err = cli(capsys, str(source), "-m", str(tiny_model_dir), "-o", str(target), "--flicker-reduction",
                    "--batch-size", "3", "--strength", "0.7", "--preserve-color", "histogram")
    assert code == 0, err
    assert read_frames(target).shape[0] == 14 and probe_video(target).has_audio


def test_cli_bad_videos_one_line_no_output(tmp_path: Path, tiny_model_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00garbage" * 100)
    for args, words in (([str(bad), "-o", str(tmp_path / "out.webm")], ("bad.webm",)),
                        ([str(make_video(tmp_path / "in.mp4", frames=2)), "-o", str(tmp_path / "out.png")],
                         ("video extension",)),
                        ([str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"), "--flicker-reduction", "1.5"],
                         ("between 0",))):
        code, err = cli(capsys, *args, "-m", str(tiny_model_dir))
        lines = [line for line in err.strip().splitlines() if line.strip().startswith("fastnst:")]
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert all(word in lines[0] for word in words), lines[0]
    no_leftovers(tmp_path, {"bad.webm", "in.mp4", "tiny_model"})


def test_cli_image_controls_and_tiles(tmp_path: Path, tiny_model_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.effect_noise((70, 50), 60).convert("RGB").save(photo)
    for extra in (["--tile", "32", "--strength", "0.5"], ["--preserve-color", "luminance"]):
        code, err = cli(capsys, str(photo), "-m", str(tiny_model_dir), "-o", str(tmp_path / "out.png"), *extra)
        assert code == 0, err
        assert Image.open(tmp_path / "out.png").size == (70, 50)
    code, err = cli(capsys, str(photo), "-m", str(tiny_model_dir), "-o", str(tmp_path / "x.png"), "--strength", "2")
    assert code == 1 and "strength must be between 0 and 1" in err
