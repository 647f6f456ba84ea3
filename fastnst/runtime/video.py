"""Stylize video files frame by frame with PyAV (FFmpeg), in a stream.

Frames are decoded, stylized in batches and encoded as they come, so memory stays flat however long the video
is; audio packets are copied untouched when the output container accepts their codec (else re-encoded to the
container's usual codec). The frame rate is kept, and each frame keeps its presentation time (snapped to that
rate). Output codecs: H.264 (yuv420p, CRF 18) in .mp4/.mov/.mkv, VP9 + Opus in .webm, MPEG-4 Part 2 in .avi;
yuv420p needs even sides, so an odd last row or column is dropped. The output is written to a temporary file
and renamed at the end: a corrupt input, an unsupported codec or Ctrl-C leave no partial file behind.

Flicker: a feed-forward style network redraws its texture in every frame, so sensor noise and small motions
make the strokes shimmer. :class:`TemporalBlend` (``flicker``) carries the previous output over
where the input did not change, per pixel, and takes the new one where it did (no ghosting on motion); see
``benchmarks/flicker.py`` for the measured :func:`flicker_ratio`. Smoothing the instance-norm statistics over
frames (:func:`model_stylizer` ``smoothing``, :func:`fastnst.model.norm_stats.smoothed_stats`) was tried too and
changes it by a few per cent only: the statistics are not what flickers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fastnst.model.norm_stats import smoothed_stats
from fastnst.model.transformer import TransformerNet
from fastnst.runtime.base import Backend
from fastnst.runtime.color import Controls, apply_controls
from fastnst.runtime.margin import DEFAULT_MARGIN, with_margin
from fastnst.utils.atomic import atomic_path
from fastnst.utils.errors import VideoError, first_line

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi"})
"""Lower-case suffixes treated as videos (input and output)."""

# container suffix → (video encoder, encoder options, audio codecs copied as they are, audio encoder otherwise)
_ENCODING: dict[str, tuple[str, dict[str, str], frozenset[str], str]] = {
    ".mp4": ("libx264", {"crf": "18", "preset": "medium"}, frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"}),
             "aac"),
    ".mov": ("libx264", {"crf": "18", "preset": "medium"}, frozenset({"aac", "mp3", "ac3", "alac", "pcm_s16le"}),
             "aac"),
    ".mkv": ("libx264", {"crf": "18", "preset": "medium"},
             frozenset({"aac", "mp3", "ac3", "eac3", "opus", "vorbis", "flac", "pcm_s16le", "alac"}), "aac"),
    ".webm": ("libvpx-vp9", {"crf": "32", "b": "0", "row-mt": "1"}, frozenset({"opus", "vorbis"}), "libopus"),
    ".avi": ("mpeg4", {}, frozenset({"mp3", "ac3", "pcm_s16le"}), "libmp3lame"),
}
_MPEG4_BITS_PER_PIXEL = 0.3  # MPEG-4 Part 2 has no CRF mode: a bit rate that keeps painted texture
DEFAULT_BATCH = 4
Stylizer = Callable[[torch.Tensor], torch.Tensor]  # float [N, 3, H, W] in [0, 1] → same shape


@dataclass(frozen=True)
class VideoInfo:
    """What the input container says about its first video stream."""

    width: int
    height: int
    fps: Fraction
    frames: int | None  # from the header; None when the container does not say
    has_audio: bool
    codec: str


def is_video(path: str | os.PathLike[str]) -> bool:
    """True when the path's suffix names a video container fastnst reads and writes."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def check_video_output(path: str | os.PathLike[str]) -> None:
    """Fail fast, before any decoding, when ``path`` cannot be written as a video."""
    target = Path(path)
    if target.suffix.lower() not in _ENCODING:
        raise VideoError(f"cannot write video {target}: unknown extension '{target.suffix}'; use one of "
                         f"{', '.join(sorted(_ENCODING))}")
    if target.is_dir():
        raise VideoError(f"cannot write video {target}: it is a directory")


def _av():  # type: ignore[no-untyped-def]
    """PyAV, imported on first use so image-only runs never load FFmpeg."""
    try:
        import av
    except ImportError:
        raise VideoError('video needs the video extra: pip install "fastnst[video]"') from None
    return av


def _reason(exc: BaseException) -> str:
    return first_line(exc).rstrip(".")


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[object]:
    av = _av()
    if not path.is_file():
        raise VideoError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise VideoError(f"{path} is not a readable video ({_reason(exc)})") from None
    try:
        yield container
    finally:
        container.close()


def _info(path: Path, container: object) -> VideoInfo:
    streams = container.streams  # type: ignore[attr-defined]
    if not streams.video:
        raise VideoError(f"{path} has no video stream")
    stream = streams.video[0]
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise VideoError(f"{path}: the video stream has no frame size (unsupported codec {ctx.name!r}?)")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise VideoError(f"{path}: the video stream has no frame rate")
    return VideoInfo(width=ctx.width, height=ctx.height, fps=Fraction(rate), frames=stream.frames or None,
                     has_audio=bool(streams.audio), codec=ctx.name)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate, frame count and audio of a video file; VideoError when it is not a readable video."""
    source = Path(path)
    with _open_input(source) as container:
        return _info(source, container)


@contextlib.contextmanager
def model_stylizer(model: TransformerNet, *, smoothing: float = 0.0) -> Iterator[Stylizer]:
    """A batch stylizer around the PyTorch network for one video's frames, in order.

    ``smoothing`` > 0 reduces flicker: each frame's instance-norm statistics are an exponential moving average
    over the frames before it (0.9 ≈ the last ten frames). One stylizer per video: the average carries over.
    """
    device = next(model.parameters()).device

    @torch.inference_mode()
    def run(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.to(device)).float().clamp_(0, 1).cpu()

    if smoothing <= 0:
        yield run
        return
    with smoothed_stats(model, smoothing):
        yield run


@contextlib.contextmanager
def frame_stylizer(runner: TransformerNet | Backend, *, smoothing: float = 0.0) -> Iterator[Stylizer]:
    """A batch stylizer for one video from the bare network or a runtime backend.

    Flicker reduction (``smoothing`` > 0) works on the norm layers of the PyTorch network, so a backend must
    carry one (the torch backend's ``model``, whose norm layers its fused network shares); ONNX Runtime
    sessions cannot, and are refused with a clear message.
    """
    if isinstance(runner, TransformerNet):
        with model_stylizer(runner, smoothing=smoothing) as stylize:
            yield stylize
        return
    if smoothing <= 0:
        yield runner.stylize
        return
    network = getattr(runner, "model", None)
    if not isinstance(network, TransformerNet):
        raise VideoError(f"flicker reduction needs the torch backend (the {runner.name} backend cannot change "
                         "normalisation statistics); use the torch backend or no statistics smoothing")
    with smoothed_stats(network, smoothing):
        yield runner.stylize


def stylize_video_file(runner: TransformerNet | Backend, source: str | os.PathLike[str],
                       target: str | os.PathLike[str], *, flicker: float = 0.0, smoothing: float = 0.0,
                       batch_size: int = DEFAULT_BATCH, controls: Controls | None = None,
                       max_pixels: int | None = None, progress: Callable[[int], None] | None = None,
                       margin: int = DEFAULT_MARGIN) -> Path:
    """:func:`stylize_video` with a stylizer made by :func:`frame_stylizer` (what ``fastnst stylize`` runs).

    ``flicker``: :class:`TemporalBlend` strength, any backend; ``smoothing``: statistics smoothing, torch only;
    ``margin``: pixels mirrored onto each side of every frame and cropped after (fastnst.runtime.margin).
    """
    if not 0.0 <= smoothing < 1.0:
        raise VideoError(f"statistics smoothing must be between 0 (off) and 1 (exclusive), got {smoothing}")
    TemporalBlend(flicker)  # validate before any decoding
    with frame_stylizer(runner, smoothing=smoothing) as stylize:
        return stylize_video(source, target, with_margin(stylize, margin), batch_size=batch_size,
                             controls=controls, flicker=flicker,
                             max_pixels=max_pixels, progress=progress)


MOTION_SCALE = 0.05  # input change (mean over RGB, 0..1) at which carrying the old output over fades to e^-1


class TemporalBlend:
    """Per-pixel blend of each stylized frame with the previous result, gated by how much the input changed.

    ``out[t] = new[t] + w · (out[t-1] - new[t])`` with ``w = strength · exp(-(|in[t] - in[t-1]| / s)²)``: static
    pixels (changes at the level of sensor noise) keep most of the previous stylization, moving ones take the new
    one. Call it on consecutive batches of one video, in order.
    """

    def __init__(self, strength: float, motion_scale: float = MOTION_SCALE) -> None:
        if not 0.0 <= strength < 1.0:
            raise VideoError(f"flicker reduction must be between 0 (off) and 1 (exclusive), got {strength}")
        self.strength = strength
        self.motion_scale = motion_scale
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, output) of the previous frame

    def __call__(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        if self.strength == 0.0:
            return outputs
        blended = []
        for frame_in, frame_out in zip(inputs, outputs, strict=False):
            if self._last is not None:
                change = (frame_in - self._last[0]).abs().mean(dim=0, keepdim=True)  # [1, H, W]
                weight = self.strength * torch.exp(-((change / self.motion_scale) ** 2))
                frame_out = frame_out + weight * (self._last[1] - frame_out)
            self._last = (frame_in, frame_out)
            blended.append(frame_out)
        return torch.stack(blended)


def _to_batch(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def _controlled(stylized: torch.Tensor, original: torch.Tensor, controls: Controls) -> torch.Tensor:
    """Controls per frame (histogram matching must not pool a batch's frames)."""
    if controls.is_identity:
        return stylized
    return torch.cat([apply_controls(stylized[i : i + 1], original[i : i + 1], controls)
                      for i in range(stylized.shape[0])])


def stylize_video(source: str | os.PathLike[str], target: str | os.PathLike[str], stylize: Stylizer, *,
                  batch_size: int = DEFAULT_BATCH, controls: Controls | None = None, flicker: float = 0.0,
                  max_pixels: int | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Stylize every frame of ``source`` into ``target`` (container from its extension); returns ``target``.

    ``stylize`` gets batches of up to ``batch_size`` consecutive frames; ``flicker`` is the
    :class:`TemporalBlend` strength (0 = off); ``progress`` is called with the number of frames just written.
    ``max_pixels`` caps the frame size (width × height).
    """
    av = _av()
    src, dst = Path(source), Path(target)
    check_video_output(dst)
    if batch_size < 1:
        raise VideoError(f"batch size must be at least 1, got {batch_size}")
    controls = controls or Controls()
    temporal = TemporalBlend(flicker)
    encoder, options, copyable, audio_encoder = _ENCODING[dst.suffix.lower()]
    with _open_input(src) as reader:
        info = _info(src, reader)
        if max_pixels is not None and info.width * info.height > max_pixels:
            raise VideoError(f"{src}: frames of {info.width}×{info.height} are over the limit of {max_pixels} pixels",
                             setting="max_pixels", action="raise")
        if src.resolve() == dst.resolve():
            raise VideoError(f"{dst} is the input; write the result to another file")
        in_video = reader.streams.video[0]  # type: ignore[attr-defined]
        in_audio = reader.streams.audio[0] if info.has_audio else None  # type: ignore[attr-defined]
        in_video.thread_type = "AUTO"
        width, height = info.width - info.width % 2, info.height - info.height % 2
        if width == 0 or height == 0:
            raise VideoError(f"{src}: frames of {info.width}×{info.height} are too small to encode")
        written = 0
        try:
            with atomic_path(dst) as tmp, av.open(str(tmp), mode="w") as writer:
                out_video = writer.add_stream(encoder, rate=info.fps, options=options)
                out_video.width, out_video.height, out_video.pix_fmt = width, height, "yuv420p"
                # Frame threads as well as slices: libx264 then keeps more cores busy (PyAV asks for slices only).
                out_video.codec_context.thread_type = "AUTO"
                out_video.time_base = Fraction(1, 1) / info.fps
                if encoder == "mpeg4":
                    out_video.bit_rate = max(1_000_000, int(width * height * info.fps * _MPEG4_BITS_PER_PIXEL))
                out_audio = None
                copy_audio = in_audio is not None and in_audio.codec_context.name in copyable
                if in_audio is not None:
                    if copy_audio:
                        out_audio = writer.add_stream_from_template(in_audio)
                    else:
                        out_audio = writer.add_stream(audio_encoder, rate=in_audio.codec_context.sample_rate
                                                      or 48_000)
                pending: list[tuple[np.ndarray, int]] = []  # (rgb frame, output pts)
                last_pts = -1

                def flush() -> None:
                    nonlocal written
                    if not pending:
                        return
                    original = _to_batch([frame for frame, _ in pending])
                    result = _controlled(temporal(original, stylize(original)), original, controls)
                    pixels = result.clamp(0, 1).mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                    for rgb, (_, pts) in zip(pixels, pending, strict=False):
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                        frame = frame.reformat(format="yuv420p")
                        frame.pts = pts
                        for packet in out_video.encode(frame):
                            writer.mux(packet)
                    written += len(pending)
                    if progress is not None:
                        progress(len(pending))
                    pending.clear()

                streams = [in_video] + ([in_audio] if in_audio is not None else [])
                for packet in reader.demux(*streams):  # type: ignore[attr-defined]
                    if packet.stream is in_video:
                        for frame in packet.decode():
                            seconds = frame.time if frame.time is not None else (last_pts + 1) / info.fps
                            pts = max(last_pts + 1, round(seconds * info.fps))
                            last_pts = pts
                            rgb = frame.to_ndarray(format="rgb24")[:height, :width]
                            pending.append((rgb, pts))
                            if len(pending) >= batch_size:
                                flush()
                    elif out_audio is not None:
                        if copy_audio:
                            if packet.dts is None:  # the demuxer's end-of-stream marker
                                continue
                            packet.stream = out_audio
                            writer.mux(packet)
                        else:
                            for audio_frame in packet.decode():
                                audio_frame.pts = None
                                for out_packet in out_audio.encode(audio_frame):
                                    writer.mux(out_packet)
                flush()
                if written == 0:
                    raise VideoError(f"{src} holds no decodable video frames")
                for packet in out_video.encode(None):
                    writer.mux(packet)
                if out_audio is not None and not copy_audio:
                    for packet in out_audio.encode(None):
                        writer.mux(packet)
        except av.FFmpegError as exc:
            where = f" after {written} frames" if written else ""
            raise VideoError(f"{src} could not be stylized{where}: {_reason(exc)}") from None
    return dst


def flicker_ratio(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of ``outputs`` divided by that of ``inputs`` (both [T, 3, H, W]).

    1 means the stylized video changes as much as the source does; values above 1 are flicker the network adds.
    """
    if inputs.shape[0] < 2 or inputs.shape != outputs.shape:
        raise ValueError("need two or more frames, inputs and outputs of the same shape")
    change_in = (inputs[1:] - inputs[:-1]).abs().mean()
    change_out = (outputs[1:] - outputs[:-1]).abs().mean()
    return float(change_out / change_in.clamp_min(1e-12))
