"""Every image read and write in fastnst goes through this module.

Reading is defensive because inputs come from users and HTTP uploads: the pixel count is checked from the header
before anything is decoded, truncated files are detected instead of silently padded, and every failure becomes a
one-line :class:`~fastnst.utils.errors.ImageError` that names the file. Whatever the stored mode (palette, 16-bit,
float, CMYK, with or without alpha), callers get an 8-bit RGB image plus an optional separate alpha channel.
Writing is atomic so an interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageOps, features

from fastnst.utils.atomic import atomic_path
from fastnst.utils.defaults import DEFAULT_MAX_PIXELS
from fastnst.utils.errors import ImageError, ImageTooLargeError, NotAnImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "SAVE_FORMATS",
    "LoadedImage",
    "can_write_extension",
    "check_output_path",
    "image_to_tensor",
    "list_images",
    "load_image",
    "load_rgb",
    "open_image_bytes",
    "resize_max_side",
    "save_image",
    "tensor_to_image",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
"""Lower-case suffixes :func:`list_images` picks up (matched case-insensitively)."""

SAVE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
"""Output suffix -> PIL format; the format is always chosen from the extension."""

# Only these PIL decoders are tried. Pillow can open many more formats, some of which hand the file to external
# programs (EPS runs Ghostscript); an upload server must not expose those. JPEG also covers MPO (phone photos).
_READ_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
_READ_FORMATS_TEXT = "JPEG, PNG, WebP, BMP, TIFF, GIF or PPM/PGM"

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Formats whose mode-"I" images are 16-bit samples (0..65535): older Pillow loads 16-bit PNG grayscale as "I",
# and PPM/PGM with maxval > 255 are rescaled by Pillow to 0..65535.
_SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM"})
_MAX_SIDE = {"JPEG": 65_535, "WEBP": 16_383}  # encoder limits, checked up front for a clear message
_ALPHA_SAVE_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})


@dataclass
class LoadedImage:
    """A decoded image: 8-bit RGB pixels plus the alpha channel kept apart (the network only sees RGB)."""

    rgb: Image.Image
    """Mode "RGB", fully loaded, EXIF orientation applied; colour values as stored (alpha not composited)."""
    alpha: Image.Image | None
    """Mode "L" transparency of the source, or None when the source has none."""
    source_mode: str
    """The decoded PIL mode before conversion (e.g. "P", "I;16", "CMYK"), for logs and diagnostics."""
    format: str | None = None
    """The PIL format that decoded it ("JPEG", "PNG", ...)."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation."""
        return self.rgb.size


# --------------------------------------------------------------------------------------------------- reading


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as RGB plus optional alpha, or raise ImageError with one line naming the file.

    ``max_pixels`` caps width*height (checked from the header, before decoding); None disables the cap.
    """
    _check_max_pixels(max_pixels)
    file = Path(path)
    label = _label(file)
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed below; the error cases need the exact exception
    except FileNotFoundError:
        raise ImageError(f"{label} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{label} is a directory, not an image file") from None
    except PermissionError:
        if file.is_dir():  # Windows reports opening a directory as "permission denied"
            raise ImageError(f"{label} is a directory, not an image file") from None
        raise ImageError(f"{label} cannot be read: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{label} cannot be read: {_reason(exc)}") from None
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageError(f"{label} is empty (0 bytes)")
        return _decode(handle, label, os.fspath(file), max_pixels)


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image file as 8-bit RGB, dropping any alpha (for callers that never write it back)."""
    return load_image(path, max_pixels=max_pixels).rgb


def open_image_bytes(
    data: bytes | bytearray | memoryview, *, name: str = "<upload>", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode in-memory image data (an HTTP upload) with exactly the rules of :func:`load_image`.

    ``name`` only appears in error messages.
    """
    _check_max_pixels(max_pixels)
    label = _label(name)
    if len(data) == 0:
        raise ImageError(f"{label} is empty (0 bytes)")
    with io.BytesIO(data) as stream:
        return _decode(stream, label, "", max_pixels)


def _decode(fp: IO[bytes], label: str, filename: str, max_pixels: int | None) -> LoadedImage:
    """Identify, size-check, fully decode and normalise one image read from ``fp``."""
    im = _identify(fp, label, filename)
    try:
        _check_pixels(im.size, label, max_pixels)
        try:
            im.load()
        except Image.DecompressionBombError as exc:
            # Some decoders (GIF frames, TIFF tiles) apply Pillow's global limit while loading.
            raise ImageTooLargeError(f"{label} is too large to decode safely ({_reason(exc)})") from None
        except MemoryError:
            raise ImageTooLargeError(f"{label} is too large to decode in the available memory") from None
        except Exception as exc:  # PIL reports damaged data with OSError, SyntaxError, ValueError, EOFError, ...
            raise ImageError(f"{label} is truncated or corrupt ({_reason(exc)})") from None
        _check_pixels(im.size, label, max_pixels)  # a GIF frame may grow the canvas while loading
        source_mode = im.mode
        _apply_exif_orientation(im)
        rgb, alpha = _to_rgb_and_alpha(im, im.format, label)
        return LoadedImage(rgb=rgb, alpha=alpha, source_mode=source_mode, format=im.format)
    finally:
        im.close()


def _identify(fp: IO[bytes], label: str, filename: str) -> Image.Image:
    """Open the header with the first whitelisted PIL decoder that accepts the data.

    This replaces ``Image.open`` on purpose: ``Image.open`` applies Pillow's process-wide
    ``Image.MAX_IMAGE_PIXELS`` (warning above it, error above twice it), which would override the per-call
    ``max_pixels`` in both directions. Going through the same plugin registry (``Image.OPEN``) lets us apply
    our own limit without touching that global, which other threads of the server may rely on.
    """
    prefix = fp.read(16)
    Image.preinit()
    failure: tuple[str, BaseException] | None = None
    for fmt in _READ_FORMATS:
        if fmt not in Image.OPEN:
            Image.init()  # WebP and TIFF are not among the plugins preinit() loads
        entry = Image.OPEN.get(fmt)
        if entry is None:  # this Pillow build lacks the codec
            continue
        factory, accept = entry
        if accept is not None:
            verdict = accept(prefix)
            if isinstance(verdict, str) or not verdict:  # a string is Pillow's "looks like it, but unsupported"
                continue
        fp.seek(0)
        try:
            return factory(fp, filename or None)
        except MemoryError:
            raise ImageTooLargeError(f"{label} is too large to decode in the available memory") from None
        except Exception as exc:  # a decoder claimed the magic bytes but the header is damaged
            failure = failure or (fmt, exc)
    if failure is not None:
        fmt, exc = failure
        raise ImageError(f"{label} is truncated or corrupt ({fmt} header: {_reason(exc)})")
    raise NotAnImageError(f"{label} is not an image PIL can read (expected {_READ_FORMATS_TEXT})")


def _check_max_pixels(max_pixels: int | None) -> None:
    """Reject a nonsensical cap (a programming or config-validation bug) before touching the file."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) < 1):
        raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")


def _check_pixels(size: tuple[int, int], label: str, max_pixels: int | None) -> None:
    """Refuse images above the cap using only header information, so nothing large is allocated."""
    width, height = size
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise ImageTooLargeError(
            f"{label} has {width}×{height} = {pixels} pixels, over the limit of {max_pixels}",
            setting="max_pixels", action="raise",
        )


def _apply_exif_orientation(im: Image.Image) -> None:
    """Rotate/flip in place as the camera's EXIF Orientation tag says, so photos are not sideways.

    A damaged EXIF block is not worth refusing an otherwise readable image for: the pixels are used unrotated.
    """
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:  # noqa: BLE001 - EXIF parsing errors come in many types; orientation is best effort
        return


def _to_rgb_and_alpha(im: Image.Image, fmt: str | None, label: str) -> tuple[Image.Image, Image.Image | None]:
    """Convert any decoded mode to (RGB, alpha-or-None); new images, independent of the open file."""
    mode = im.mode
    has_transparency = "transparency" in im.info
    if mode in _ALPHA_MODES or (mode == "P" and (has_transparency or _palette_has_alpha(im))):
        rgba = im.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    if mode in ("L", "RGB") and has_transparency:  # PNG tRNS colour key
        rgba = im.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    if mode == "RGB":
        return im.copy(), None
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _deep_to_8bit(im, fmt).convert("RGB"), None
    if mode == "CMYK":
        return _cmyk_to_rgb(im), None
    try:
        return im.convert("RGB"), None  # L, 1, P, YCbCr, RGBX, HSV, ...
    except ValueError:
        raise NotAnImageError(f"{label} has an unsupported pixel mode {mode!r}") from None


def _palette_has_alpha(im: Image.Image) -> bool:
    """True for palette images whose palette itself carries alpha (e.g. from WebP/PNG via Pillow)."""
    palette = im.palette
    return palette is not None and palette.mode == "RGBA"


def _deep_to_8bit(im: Image.Image, fmt: str | None) -> Image.Image:
    """Scale 16-bit / 32-bit integer / float grayscale to 8 bits (PIL's own convert clips instead of scaling)."""
    mode = im.mode
    arr = np.asarray(im)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and fmt in _SIXTEEN_BIT_I_FORMATS):
        wide = np.clip(arr.astype(np.int64 if mode == "I" else np.uint32), 0, 65_535)
        out = (wide + 128) // 257  # exact round(v / 257): 65535 -> 255, 32768 -> 128
    elif mode == "I":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            out = arr
        elif lo >= 0 and hi <= 65_535:
            out = (arr.astype(np.int64) + 128) // 257
        else:  # arbitrary 32-bit data (scientific TIFF): stretch its range
            out = np.rint((arr.astype(np.float64) - lo) * (255.0 / (hi - lo)))
    else:  # "F"
        values = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        out = np.rint(values * 255.0) if peak <= 1.0 else np.rint(values)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """Convert CMYK through its embedded ICC profile when there is one (naive conversion distorts colours)."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:  # noqa: BLE001 - no LittleCMS or a broken profile: fall back to the plain formula
            pass
    return im.convert("RGB")


# --------------------------------------------------------------------------------------------------- tensors


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float32 tensor [1, 3, H, W] in [0, 1], the layout every model in fastnst takes."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    array = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only buffers
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """Tensor [1, 3, H, W] or [3, H, W] in [0, 1] -> 8-bit RGB image; out-of-range values are clamped, NaN -> 0."""
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape [1, 3, H, W] or [3, H, W], got {list(t.shape)}")
    values = t.detach().to(device="cpu", dtype=torch.float32)
    values = torch.nan_to_num(values, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    array = values.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array)


# --------------------------------------------------------------------------------------------------- writing


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Fail fast, before minutes of work, when ``path`` cannot be written as an image."""
    target = Path(path)
    _save_format(target)
    label = _label(target)
    if target.is_dir():
        raise ImageError(f"cannot save {label}: it is a directory")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ImageError(f"cannot save {label}: {_label(parent)} is a file, not a folder")
            break


def save_image(
    img: Image.Image,
    path: str | os.PathLike[str],
    *,
    alpha: Image.Image | None = None,
    quality: int = 95,
) -> Path:
    """Write ``img`` atomically in the format its extension names, and return the path.

    ``alpha`` (mode "L") is stored by PNG, WebP and TIFF and dropped by JPEG and BMP; it is resized to the image
    when sizes differ (the stylized image may have been resized). An RGBA/LA image with no explicit ``alpha``
    keeps its own. A failed write leaves no partial or temporary file and any previous file untouched.
    """
    target = Path(path)
    fmt = _save_format(target)
    label = _label(target)
    if isinstance(quality, bool) or not 1 <= int(quality) <= 100:
        raise ImageError(f"cannot save {label}: JPEG/WebP quality must be between 1 and 100, got {quality!r}")
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(img.size) > limit:
        raise ImageTooLargeError(
            f"cannot save {label}: {img.width}×{img.height} is too large for {fmt} (at most {limit} px a side); "
            "use .png or .tif"
        )

    if alpha is None and img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = img.getchannel("A")
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    out = rgb
    if alpha is not None and fmt in _ALPHA_SAVE_FORMATS:
        if alpha.mode != "L":
            alpha = alpha.convert("L")
        if alpha.size != rgb.size:
            alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
        out = rgb.copy() if rgb is img else rgb  # never modify the caller's image
        out.putalpha(alpha)

    params: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = int(quality)
    if fmt == "TIFF" and features.check("libtiff"):
        params["compression"] = "tiff_deflate"  # lossless; uncompressed TIFFs are needlessly huge

    try:
        with atomic_path(target) as tmp:
            out.save(tmp, format=fmt, **params)
    except (OSError, ValueError) as exc:
        if target.is_dir():
            raise ImageError(f"cannot save {label}: it is a directory") from None
        raise ImageError(f"cannot save {label}: {_reason(exc)}") from None
    return target


def can_write_extension(suffix: str) -> bool:
    """Whether :func:`save_image` can write a file with this extension (``".gif"`` and ``".ppm"`` are read only)."""
    fmt = SAVE_FORMATS.get(suffix.lower())
    if fmt is None:
        return False
    Image.init()
    return fmt in Image.SAVE


def _save_format(target: Path) -> str:
    """PIL format for ``target``'s extension, or ImageError listing the ones we can write."""
    suffix = target.suffix.lower()
    fmt = SAVE_FORMATS.get(suffix)
    label = _label(target)
    if fmt is None:
        shown = f"'{target.suffix}'" if target.suffix else "no extension"
        raise ImageError(
            f"cannot save {label}: unknown image extension {shown}; use one of {', '.join(sorted(SAVE_FORMATS))}"
        )
    Image.init()
    if fmt not in Image.SAVE:
        raise ImageError(f"cannot save {label}: this Pillow build cannot write {fmt}; use .png")
    return fmt


# --------------------------------------------------------------------------------------------------- folders


def list_images(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by extension, sorted for reproducible runs.

    Hidden files and folders (leading dot: .git, .DS_Store, macOS "._" twins, our own atomic temp files) are
    skipped; symlinked folders are not followed, to avoid cycles.
    """
    root = Path(folder)
    label = _label(root)
    if not root.exists():
        raise ImageError(f"{label} does not exist")
    if not root.is_dir():
        raise ImageError(f"{label} is not a folder")
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found.extend(Path(dirpath, name) for name in filenames if _is_image_name(name))
    else:
        found = [p for p in root.iterdir() if _is_image_name(p.name) and p.is_file()]
    return sorted(found)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------------------------------- resizing


def resize_max_side(img: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale so the longer side is at most ``max_side`` (aspect kept, LANCZOS); never upscales.

    Returns ``img`` itself when no resize is needed (None means no limit).
    """
    if max_side is None:
        return img
    if isinstance(max_side, bool) or int(max_side) < 1:
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    width, height = img.size
    longest = max(width, height)
    if longest <= max_side:
        return img
    scale = max_side / longest
    size = (max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale))))
    # reducing_gap: shrink by an integer factor first (much faster on huge photos, visually identical)
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# --------------------------------------------------------------------------------------------------- messages


def _label(name: str | os.PathLike[str]) -> str:
    """The name for a one-line message: control characters (e.g. newlines in upload names) escaped."""
    text = os.fspath(name)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _reason(exc: BaseException) -> str:
    """A short one-line reason from an exception, for the parenthesis in our messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 120:
        text = text[:117] + "..."
    return text
