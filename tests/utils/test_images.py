"""Tests for fastnst.utils.images: every input is generated here, in tmp_path."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fastnst.utils import images
from fastnst.utils.errors import ImageError
from fastnst.utils.images import (
    IMAGE_EXTENSIONS,
    SAVE_FORMATS,
    check_output_path,
    image_to_tensor,
    list_images,
    load_image,
    load_rgb,
    open_image_bytes,
    resize_max_side,
    save_image,
    tensor_to_image,
)

# ----------------------------------------------------------------------------------------------- helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None = None) -> bytes:
    """A PNG built by hand, for layouts Pillow cannot write (16-bit RGB) or headers that lie about the size."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    body = _png_chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + header + body + _png_chunk(b"IEND", b"")


def _noise_rgb(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(int(v) for v in img.getpixel(xy))


# ----------------------------------------------------------------------------------------------- modes


def test_rgb_png_loads_exactly(tmp_path: Path) -> None:
    src = _noise_rgb()
    src.save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.rgb.mode == "RGB" and loaded.alpha is None and loaded.source_mode == "RGB"
    assert loaded.format == "PNG" and loaded.size == (64, 48)
    assert np.array_equal(np.asarray(loaded.rgb), np.asarray(src))
    assert load_rgb(tmp_path / "a.png").size == (64, 48)


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("gray.png", lambda: Image.new("L", (6, 4), 77), (77, 77, 77)),
        ("bits.png", lambda: Image.new("1", (6, 4), 1), (255, 255, 255)),
        ("bits.bmp", lambda: Image.new("1", (6, 4), 0), (0, 0, 0)),
        ("rgb.bmp", lambda: Image.new("RGB", (6, 4), (10, 200, 30)), (10, 200, 30)),
        ("rgb.tiff", lambda: Image.new("RGB", (6, 4), (10, 200, 30)), (10, 200, 30)),
        ("rgb.ppm", lambda: Image.new("RGB", (6, 4), (10, 200, 30)), (10, 200, 30)),
        ("gray.pgm", lambda: Image.new("L", (6, 4), 99), (99, 99, 99)),
        (
            "pal.png",
            lambda: Image.new("RGB", (6, 4), (250, 1, 2)).convert("P", palette=Image.Palette.ADAPTIVE),
            (250, 1, 2),
        ),
        ("pal.gif", lambda: Image.new("RGB", (6, 4), (0, 0, 255)).convert("P"), (0, 0, 255)),
    ],
)
def test_simple_modes_become_rgb(tmp_path: Path, name: str, make, expected: tuple[int, int, int]) -> None:
    make().save(tmp_path / name)
    loaded = load_image(tmp_path / name)
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (6, 4) and loaded.alpha is None
    assert _pixel(loaded.rgb, (3, 2)) == expected


def test_webp_loads(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (200, 100, 50)).save(tmp_path / "x.webp", lossless=True)
    loaded = load_image(tmp_path / "x.webp")
    assert loaded.rgb.mode == "RGB" and _pixel(loaded.rgb, (4, 4)) == (200, 100, 50)


def _gray16_values() -> np.ndarray:
    return np.array([[0, 32768, 65535, 257 * 100]], dtype=np.uint16)


@pytest.mark.parametrize("name", ["g16.png", "g16.tiff"])
def test_16bit_gray_is_scaled(tmp_path: Path, name: str) -> None:
    Image.fromarray(_gray16_values()).save(tmp_path / name)
    loaded = load_image(tmp_path / name)
    assert loaded.source_mode.startswith("I")
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (4, 1)
    assert [_pixel(loaded.rgb, (x, 0)) for x in range(4)] == [(0,) * 3, (128,) * 3, (255,) * 3, (100,) * 3]


def test_16bit_big_endian_tiff(tmp_path: Path) -> None:
    raw = _gray16_values().astype(">u2").tobytes()
    Image.frombytes("I;16B", (4, 1), raw).save(tmp_path / "be.tiff")
    loaded = load_image(tmp_path / "be.tiff")
    assert loaded.source_mode == "I;16B"
    assert np.asarray(loaded.rgb)[0, :, 0].tolist() == [0, 128, 255, 100]


def test_16bit_pgm_loads_as_mode_i(tmp_path: Path) -> None:
    (tmp_path / "g.pgm").write_bytes(b"P5 4 1 65535\n" + _gray16_values().astype(">u2").tobytes())
    loaded = load_image(tmp_path / "g.pgm")
    assert loaded.source_mode == "I"
    assert np.asarray(loaded.rgb)[0, :, 0].tolist() == [0, 128, 255, 100]


def test_mode_i_from_png_is_16bit_even_when_dark() -> None:
    # Older Pillow loads 16-bit PNG grayscale as "I": a dark image must still be divided by 257.
    im = Image.fromarray(np.array([[0, 200, 65535]], dtype=np.int32))
    assert im.mode == "I"
    rgb, alpha = images._to_rgb_and_alpha(im, "PNG", "x.png")
    assert alpha is None and np.asarray(rgb)[0, :, 0].tolist() == [0, 1, 255]


def test_mode_i_tiff_range_is_inspected(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 128, 255]], dtype=np.int32)).save(tmp_path / "small.tiff")
    assert np.asarray(load_rgb(tmp_path / "small.tiff"))[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(tmp_path / "wide.tiff")
    assert np.asarray(load_rgb(tmp_path / "wide.tiff"))[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32)).save(tmp_path / "signed.tiff")
    assert np.asarray(load_rgb(tmp_path / "signed.tiff"))[0, :, 0].tolist() == [0, 128, 255]


def test_float_images_are_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "unit.tiff")
    loaded = load_image(tmp_path / "unit.tiff")
    assert loaded.source_mode == "F" and np.asarray(loaded.rgb)[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 100.0, 300.0, np.nan]], dtype=np.float32)).save(tmp_path / "byte.tiff")
    assert np.asarray(load_rgb(tmp_path / "byte.tiff"))[0, :, 0].tolist() == [0, 100, 255, 0]


def test_16bit_rgb_and_rgba_png(tmp_path: Path) -> None:
    rgb16 = np.array([[[65535, 0, 32768], [2570, 5140, 7710]]], dtype=">u2")
    (tmp_path / "rgb16.png").write_bytes(_raw_png(2, 1, 16, 2, b"\x00" + rgb16.tobytes()))
    loaded = load_image(tmp_path / "rgb16.png")
    assert loaded.rgb.mode == "RGB" and loaded.alpha is None
    assert np.asarray(loaded.rgb).tolist() == [[[255, 0, 128], [10, 20, 30]]]

    rgba16 = np.array([[[65535, 0, 0, 65535], [0, 65535, 0, 0]]], dtype=">u2")
    (tmp_path / "rgba16.png").write_bytes(_raw_png(2, 1, 16, 6, b"\x00" + rgba16.tobytes()))
    loaded = load_image(tmp_path / "rgba16.png")
    assert np.asarray(loaded.rgb).tolist() == [[[255, 0, 0], [0, 255, 0]]]
    assert loaded.alpha is not None and np.asarray(loaded.alpha).tolist() == [[255, 0]]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    loaded = load_image(tmp_path / "c.jpg")
    assert loaded.source_mode == "CMYK" and loaded.rgb.mode == "RGB" and loaded.rgb.size == (16, 16)
    r, g, b = _pixel(loaded.rgb, (8, 8))
    assert r > 230 and g < 25 and b < 25


def test_cmyk_with_unusable_icc_profile_falls_back(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (255, 0, 255, 0)).save(tmp_path / "c.jpg", quality=100, icc_profile=b"junk")
    r, g, b = _pixel(load_rgb(tmp_path / "c.jpg"), (8, 8))
    assert r < 25 and g > 230 and b < 25


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as check:
        assert check.n_frames == 3
    loaded = load_image(tmp_path / "anim.gif")
    assert loaded.rgb.size == (8, 6) and _pixel(loaded.rgb, (4, 3)) == (255, 0, 0)


def test_loaded_images_are_independent_of_the_file(tmp_path: Path) -> None:
    _noise_rgb().save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    (tmp_path / "a.png").unlink()
    assert loaded.rgb.getpixel((0, 0)) is not None and loaded.rgb.resize((8, 8)).size == (8, 8)


# ----------------------------------------------------------------------------------------------- alpha


def _rgba_source() -> Image.Image:
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 100, 50
    rgba[:, :3, 3] = 255  # left half opaque, right half transparent (colour still stored there)
    return Image.fromarray(rgba)


def test_rgba_alpha_kept_separately_and_resaved(tmp_path: Path) -> None:
    _rgba_source().save(tmp_path / "in.png")
    loaded = load_image(tmp_path / "in.png")
    assert loaded.source_mode == "RGBA" and loaded.rgb.mode == "RGB"
    assert _pixel(loaded.rgb, (5, 0)) == (200, 100, 50)  # not composited onto a background
    assert loaded.alpha is not None and loaded.alpha.mode == "L"
    assert np.asarray(loaded.alpha)[0].tolist() == [255, 255, 255, 0, 0, 0]

    for name in ("out.png", "out.tiff"):
        save_image(loaded.rgb, tmp_path / name, alpha=loaded.alpha)
        with Image.open(tmp_path / name) as back:
            assert back.mode == "RGBA"
            assert np.array_equal(np.asarray(back), np.asarray(_rgba_source()))
    save_image(loaded.rgb, tmp_path / "out.webp", alpha=loaded.alpha)
    with Image.open(tmp_path / "out.webp") as back:
        assert back.mode == "RGBA"


def test_jpeg_and_bmp_drop_alpha(tmp_path: Path) -> None:
    loaded_alpha = _rgba_source().getchannel("A")
    for name in ("out.jpg", "out.bmp"):
        save_image(_rgba_source().convert("RGB"), tmp_path / name, alpha=loaded_alpha)
        with Image.open(tmp_path / name) as back:
            assert back.mode == "RGB"
    save_image(_rgba_source(), tmp_path / "direct.jpeg")  # an RGBA image itself is accepted too
    with Image.open(tmp_path / "direct.jpeg") as back:
        assert back.mode == "RGB"


def test_alpha_resized_to_image(tmp_path: Path) -> None:
    save_image(Image.new("RGB", (12, 8)), tmp_path / "o.png", alpha=Image.new("L", (6, 4), 128))
    with Image.open(tmp_path / "o.png") as back:
        assert back.mode == "RGBA" and back.size == (12, 8) and back.getpixel((5, 5))[3] == 128


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_la_and_rgba_files_keep_alpha(tmp_path: Path, mode: str) -> None:
    Image.new(mode, (5, 3), (90, 40) if mode == "LA" else (90, 90, 90, 40)).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert _pixel(loaded.rgb, (1, 1)) == (90, 90, 90)
    assert loaded.alpha is not None and loaded.alpha.getpixel((1, 1)) == 40


def test_palette_with_transparency_keeps_alpha(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 2), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((3, 1), 1)
    pal.save(tmp_path / "p.png", transparency=1)
    pal.save(tmp_path / "p.gif", transparency=1)
    for name in ("p.png", "p.gif"):
        loaded = load_image(tmp_path / name)
        assert loaded.source_mode == "P"
        assert _pixel(loaded.rgb, (0, 0)) == (255, 0, 0) and _pixel(loaded.rgb, (3, 1)) == (0, 255, 0)
        assert loaded.alpha is not None
        assert loaded.alpha.getpixel((0, 0)) == 255 and loaded.alpha.getpixel((3, 1)) == 0


def test_pa_mode_keeps_alpha() -> None:
    pa = Image.new("RGB", (3, 2), (0, 0, 255)).convert("P").convert("PA")
    pa.putalpha(Image.new("L", (3, 2), 7))
    rgb, alpha = images._to_rgb_and_alpha(pa, None, "<memory>")
    assert rgb.mode == "RGB" and _pixel(rgb, (1, 1)) == (0, 0, 255)
    assert alpha is not None and alpha.getpixel((1, 1)) == 7


# ----------------------------------------------------------------------------------------------- EXIF


def test_exif_orientation_6_rotates(tmp_path: Path) -> None:
    # Stored 20x10 in quadrants TL red, TR green, BL blue, BR white; orientation 6 = rotate 90° clockwise.
    stored = Image.new("RGB", (20, 10))
    for box, colour in (
        ((0, 0, 10, 5), (255, 0, 0)),
        ((10, 0, 20, 5), (0, 255, 0)),
        ((0, 5, 10, 10), (0, 0, 255)),
        ((10, 5, 20, 10), (255, 255, 255)),
    ):
        stored.paste(colour, box)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=100, subsampling=0)

    loaded = load_image(tmp_path / "rot.jpg")
    assert loaded.rgb.size == (10, 20)
    expected = {(2, 2): (0, 0, 255), (7, 2): (255, 0, 0), (7, 17): (0, 255, 0), (2, 17): (255, 255, 255)}
    for xy, colour in expected.items():
        got = _pixel(loaded.rgb, xy)
        assert all(abs(a - b) < 40 for a, b in zip(got, colour, strict=False)), (xy, got, colour)


def test_corrupt_exif_does_not_block_loading(tmp_path: Path) -> None:
    Image.new("RGB", (8, 4), (1, 2, 3)).save(tmp_path / "e.jpg", exif=b"Exif\x00\x00garbage-not-tiff")
    assert load_rgb(tmp_path / "e.jpg").size == (8, 4)


# ----------------------------------------------------------------------------------------------- failures


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    _noise_rgb(96, 96).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _expect_error(path: Path, *words: str, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.jpg", "does not exist")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    _expect_error(tmp_path / "folder.png", "is a directory")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _expect_error(tmp_path / "empty.png", "is empty (0 bytes)")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not an image\n" * 20)
    _expect_error(tmp_path / "notes.jpg", "is not an image PIL can read")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    # Pillow can read ICO, but only the whitelisted formats are accepted (no EPS/Ghostscript via uploads).
    Image.new("RGB", (16, 16)).save(tmp_path / "icon.ico")
    _expect_error(tmp_path / "icon.ico", "is not an image PIL can read", "JPEG")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "half.jpg", "is truncated or corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png(tmp_path: Path) -> None:
    _noise_rgb().save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "half.png", "is truncated or corrupt")
    (tmp_path / "head.png").write_bytes(data[:20])  # signature, then a cut-off IHDR
    _expect_error(tmp_path / "head.png", "is truncated or corrupt")


def test_bomb_with_small_max_pixels(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    message = _expect_error(tmp_path / "big.png", "20×10 = 200 pixels", "over the limit of 100", max_pixels=100)
    assert "--" not in message  # the library names no CLI flag; it names the setting, the CLI phrases the flag
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "big.png", max_pixels=100)
    assert (info.value.setting, info.value.action) == ("max_pixels", "raise")
    assert load_image(tmp_path / "big.png", max_pixels=200).size == (20, 10)
    assert load_image(tmp_path / "big.png", max_pixels=None).size == (20, 10)


def test_huge_header_rejected_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bomb.png").write_bytes(_raw_png(100_000, 100_000, 8, 2, rows=b"\x00" * 64))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    _expect_error(tmp_path / "bomb.png", "100000×100000 = 10000000000 pixels", "over the limit of 100000000")
    with pytest.raises(ImageError, match="over the limit"):
        open_image_bytes((tmp_path / "bomb.png").read_bytes(), name="upload.png")


def test_pillow_global_limit_is_neither_used_nor_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (20, 10), (5, 6, 7)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow would error above 100 and warn above 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _pixel(load_rgb(tmp_path / "ok.png"), (0, 0)) == (5, 6, 7)
    assert Image.MAX_IMAGE_PIXELS == 50


def test_open_image_bytes(tmp_path: Path) -> None:
    loaded = open_image_bytes(_jpeg_bytes(), name="cat.jpg")
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (96, 96) and loaded.format == "JPEG"
    with pytest.raises(ImageError, match=r"^<upload> is empty \(0 bytes\)$"):
        open_image_bytes(b"")
    with pytest.raises(ImageError, match="evil.*is not an image PIL can read") as info:
        open_image_bytes(b"hello, not an image", name="evil\nname.gif")
    assert "\n" not in str(info.value)
    with pytest.raises(ImageError, match="is truncated or corrupt [(]GIF header") as info:
        open_image_bytes(b"GIF89a-broken", name="broken.gif")
    assert "\n" not in str(info.value)
    data = _jpeg_bytes()
    with pytest.raises(ImageError, match="up.jpg is truncated or corrupt"):
        open_image_bytes(data[: len(data) // 2], name="up.jpg")
    with pytest.raises(ImageError, match="over the limit of 10$"):
        open_image_bytes(data, max_pixels=10)


def test_invalid_max_pixels_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_image(tmp_path / "x.png", max_pixels=0)


# ----------------------------------------------------------------------------------------------- saving


@pytest.mark.parametrize("suffix", sorted(SAVE_FORMATS))
def test_save_every_format(tmp_path: Path, suffix: str) -> None:
    src = Image.new("RGB", (9, 7), (40, 80, 120))
    written = save_image(src, tmp_path / "sub" / f"out{suffix.upper()}")
    assert written == tmp_path / "sub" / f"out{suffix.upper()}"
    back = load_rgb(written)
    assert back.size == (9, 7)
    assert all(abs(a - b) <= 3 for a, b in zip(_pixel(back, (4, 3)), (40, 80, 120), strict=False))
    assert [p.name for p in written.parent.iterdir()] == [written.name]


def _fail_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_encoder(im, fp, filename) -> None:
        fp.write(b"\x89PNG partial data")
        raise OSError("disk full")

    monkeypatch.setitem(Image.SAVE, "PNG", broken_encoder)


def test_save_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_midway(monkeypatch)
    with pytest.raises(ImageError, match=r"cannot save .*new\.png: disk full"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "new.png")
    assert list(tmp_path.iterdir()) == []


def test_save_failure_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "old.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(target)
    before = target.read_bytes()
    _fail_midway(monkeypatch)
    with pytest.raises(ImageError):
        save_image(Image.new("RGB", (4, 4), (9, 9, 9)), target)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "o.png"
    save_image(Image.new("RGB", (4, 4), (1, 2, 3)), target)
    save_image(Image.new("RGB", (4, 4), (9, 9, 9)), target)
    assert _pixel(load_rgb(target), (0, 0)) == (9, 9, 9)
    assert list(tmp_path.iterdir()) == [target]


def test_unknown_extension_lists_valid_ones(tmp_path: Path) -> None:
    for name in ("out.gif", "out"):
        with pytest.raises(ImageError) as info:
            save_image(Image.new("RGB", (2, 2)), tmp_path / name)
        message = str(info.value)
        assert all(suffix in message for suffix in SAVE_FORMATS), message
        with pytest.raises(ImageError, match="unknown image extension"):
            check_output_path(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_check_output_path(tmp_path: Path) -> None:
    check_output_path(tmp_path / "new" / "deeper" / "out.JPG")  # missing folders are created when saving
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        check_output_path(tmp_path / "dir.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageError, match="is a file, not a folder"):
        check_output_path(tmp_path / "file" / "out.png")


def test_save_rejects_bad_quality_and_oversize_webp(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="quality"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "q.jpg", quality=0)
    with pytest.raises(ImageError, match="too large for WEBP"):
        save_image(Image.new("L", (16_384, 1)), tmp_path / "wide.webp")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------- folders


def test_list_images(tmp_path: Path) -> None:
    for rel in ("b.jpg", "a.PNG", "sub/c.webp", "sub/deeper/d.tiff", "sub/e.Jpeg", "f.pgm"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")  # list_images goes by name only
    for rel in ("notes.txt", "sub/model.pth", ".hidden.jpg", "sub/._e.jpg", ".cache/g.png", "noext"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "folder.jpg").mkdir()

    found = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.PNG",
        "b.jpg",
        "f.pgm",
        "sub/c.webp",
        "sub/deeper/d.tiff",
        "sub/e.Jpeg",
    ]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.PNG", "b.jpg", "f.pgm"]
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".ppm", ".pgm"} == IMAGE_EXTENSIONS


def test_list_images_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "f.jpg").write_bytes(b"x")
    with pytest.raises(ImageError, match="is not a folder"):
        list_images(tmp_path / "f.jpg")


# ----------------------------------------------------------------------------------------------- tensors


def test_tensor_round_trip_is_exact() -> None:
    values = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    src = Image.fromarray(values.astype(np.uint8))
    t = image_to_tensor(src)
    assert t.shape == (1, 3, 16, 16) and t.dtype == torch.float32
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    assert np.array_equal(np.asarray(tensor_to_image(t)), np.asarray(src))
    assert np.array_equal(np.asarray(tensor_to_image(t[0])), np.asarray(src))
    assert image_to_tensor(Image.new("L", (3, 2), 255)).shape == (1, 3, 2, 3)


def test_tensor_to_image_clamps_and_checks_shape() -> None:
    t = torch.tensor([-1.0, 0.5, 2.0, float("nan")]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    assert np.asarray(tensor_to_image(t))[0, :, 0].tolist() == [0, 128, 255, 0]
    assert tensor_to_image(torch.zeros(3, 5, 7, dtype=torch.float16, requires_grad=False)).size == (7, 5)
    for shape in ((2, 3, 4, 4), (1, 4, 4, 4), (4, 4)):
        with pytest.raises(ValueError, match="shape"):
            tensor_to_image(torch.zeros(shape))


# ----------------------------------------------------------------------------------------------- resizing


def test_resize_max_side() -> None:
    img = Image.new("RGB", (400, 100))
    small = resize_max_side(img, 200)
    assert small.size == (200, 50)
    assert resize_max_side(img, 400) is img and resize_max_side(img, 1000) is img
    assert resize_max_side(img, None) is img
    assert resize_max_side(Image.new("RGB", (1000, 3)), 10).size == (10, 1)
    with pytest.raises(ValueError):
        resize_max_side(img, 0)


def test_refusals_carry_their_kind_so_callers_need_not_parse_messages(tmp_path: Path) -> None:
    from fastnst.utils.errors import ImageError, ImageTooLargeError, NotAnImageError

    text = tmp_path / "notes.jpg"
    text.write_text("not pixels at all")
    with pytest.raises(NotAnImageError):
        images.load_image(text)
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    with pytest.raises(ImageTooLargeError):
        images.load_image(big, max_pixels=100)
    with pytest.raises(ImageError) as damaged:
        images.open_image_bytes(big.read_bytes()[:60], name="cut.png")
    assert not isinstance(damaged.value, (NotAnImageError, ImageTooLargeError))
