"""Exceptions the library raises for problems a user can fix.

Every message is one line that says what is wrong and what to do; the CLI prints it and exits non-zero,
the server turns it into a JSON error. Anything else escaping the library is a bug.
"""

from __future__ import annotations


class FastNSTError(Exception):
    """Base class: a user-facing problem with a one-line explanation.

    ``setting`` names the option (keyword argument, config key or server setting, e.g. ``"max_pixels"``) that the
    user can change to get past the problem, and ``action`` what to do with it (``"raise"``); the message itself
    speaks of no command-line flag, so the CLI and the server can each phrase the advice their own way.
    """

    def __init__(self, message: str, *, setting: str | None = None, action: str = "set") -> None:
        super().__init__(message)
        self.setting = setting
        self.action = action


class ConfigError(FastNSTError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class ImageError(FastNSTError):
    """An image cannot be read or written (missing, corrupt, truncated, too large, unknown format)."""


class NotAnImageError(ImageError):
    """The data is no image format fastnst reads, or has a pixel mode it cannot convert (HTTP 415)."""


class ImageTooLargeError(ImageError):
    """The image is over the pixel cap, too large to decode, or too large for the output format (HTTP 413)."""


class DeviceError(ConfigError):
    """The requested device is unknown or not present (``cuda`` on a machine without a GPU)."""


class WeightsError(FastNSTError):
    """VGG weights cannot be found, fetched, verified or converted."""


class CheckpointError(FastNSTError):
    """A checkpoint or model file is missing, tampered with, or of another architecture."""


class DatasetError(FastNSTError):
    """A training folder holds no usable images."""


class VideoError(FastNSTError):
    """A video cannot be read, decoded or written (missing, corrupt, no video stream, unsupported container)."""


class ExportError(FastNSTError):
    """An ONNX export, its verification against PyTorch, or a reduced-precision model's quality check failed."""


class OutputError(FastNSTError):
    """An output file cannot be written because its file system is full (or the user's quota is used up)."""


class BackendError(FastNSTError):
    """An inference backend cannot run: unknown or unavailable backend/precision, a file that is no fastnst ONNX
    model, or an input batch of the wrong rank or channels."""


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis; a text with no space to
    cut at is kept whole rather than cut inside a word."""
    if len(text) <= limit:
        return text
    head = text[:limit]  # the ellipsis replaces the character after the last kept word, or a space
    space = head.rfind(" ")
    if space <= 0:
        return text
    return head[:space].rstrip(" ,;:(") + "…"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), cut at a word boundary to ``limit``
    characters: how a third-party failure is quoted inside a fastnst error."""
    text = str(exc).strip()
    return shorten(text.splitlines()[0] if text else type(exc).__name__, limit)


_WEIGHTS_ONLY_FAILURE = "Weights only load failed"


def load_failure(exc: BaseException, limit: int = 200) -> str:
    """How a failed ``torch.load(weights_only=True)`` is quoted: for a file that names Python objects, the object
    torch refused, never torch's advice to load it with ``weights_only=False`` (which would run the file's code)."""
    text = str(exc).strip()
    if not text.startswith(_WEIGHTS_ONLY_FAILURE):
        return first_line(exc, limit)
    details = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    reason = next((line for line in details if "weights_only" not in line and "documentation" not in line),
                  "it names Python objects other than tensors")
    return shorten(f"refused: the file names Python objects, not only tensors ({reason.rstrip('.')})", limit)
