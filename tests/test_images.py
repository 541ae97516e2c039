"""The one image loader (`pixsearch.images.load_image`) on real files of every odd kind: each
case is written to disk (or to bytes) by PIL the way a camera, an editor or an attacker would
write it, then read back."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsearch.images import (
    NEUTRAL,
    ImageError,
    ImageLimits,
    ImageNotFoundError,
    load_image,
)


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _half_red_half_blue(w: int = 40, h: int = 20) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(a)


def test_plain_rgb_png_from_path_bytes_and_pil(tmp_path):
    im = _half_red_half_blue()
    path = tmp_path / "a.png"
    im.save(path)
    for source in (path, str(path), path.read_bytes(), im):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (40, 20)
        assert np.array_equal(np.asarray(out), np.asarray(im))


def test_exif_orientation_6_is_turned_upright(tmp_path):
    """A phone JPEG stored landscape with Orientation=6 (rotate 90° clockwise to view)."""
    im = _half_red_half_blue(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    im.save(path, quality=95, exif=exif.tobytes())
    raw = Image.open(path)
    assert raw.size == (40, 20)  # as stored
    out = load_image(path)
    assert out.size == (20, 40)  # as shown by a browser
    a = np.asarray(out).astype(int)
    # rotated clockwise: the stored left (red) half is now the top half
    assert a[5, 10, 0] > 200 and a[5, 10, 2] < 60
    assert a[35, 10, 2] > 200 and a[35, 10, 0] < 60
    # a PIL image that still carries the EXIF tag is turned too (CRAG-MM hands in PIL images)
    assert load_image(Image.open(path)).size == (20, 40)


def test_sixteen_bit_grayscale_keeps_its_brightness(tmp_path):
    """A 16-bit PNG used to become all white: v / 257 is the 8-bit value."""
    a = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    path = tmp_path / "depth16.png"
    Image.fromarray(a).save(path)
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(load_image(path)).astype(int)
    assert out.shape == (16, 64, 3)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert abs(out[0, 32, 0] - round(a[0, 32] / 257)) <= 1
    assert 100 < out.mean() < 155  # a gradient, not white
    dark = np.full((8, 8), 12000, np.uint16)  # a dark 16-bit picture stays dark
    assert np.asarray(load_image(_bytes(Image.fromarray(dark), "PNG")))[0, 0, 0] == 12000 // 257


def test_float_tiff_is_scaled():
    f = np.full((4, 4), 0.5, np.float32)
    out = np.asarray(load_image(_bytes(Image.fromarray(f, "F"), "TIFF")))
    assert out.shape == (4, 4, 3) and 120 <= out[0, 0, 0] <= 130


def test_cmyk_jpeg_and_grayscale(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in print colours
    out = np.asarray(load_image(_bytes(cmyk, "JPEG", quality=95))).astype(int)
    assert out[8, 8, 0] > 200 and out[8, 8, 1] < 60 and out[8, 8, 2] < 60
    gray = Image.new("L", (8, 8), 77)
    assert np.asarray(load_image(_bytes(gray, "PNG")))[0, 0].tolist() == [77, 77, 77]
    bw = Image.new("1", (8, 8), 1)
    assert np.asarray(load_image(_bytes(bw, "PNG")))[0, 0].tolist() == [255, 255, 255]


def _secret_pixels() -> tuple[np.ndarray, np.ndarray]:
    """Pixels with a red secret under alpha 0 on the left, opaque green on the right."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 0)  # hidden
    rgba[:, 4:] = (0, 255, 0, 255)  # shown
    return rgba, rgba[..., 3]


def test_transparency_never_shows_hidden_pixels():
    rgba, _ = _secret_pixels()
    out = np.asarray(load_image(_bytes(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert out[0, 0].tolist() == list(NEUTRAL)  # the red secret is gone
    assert out[0, 7].tolist() == [0, 255, 0]
    la = np.stack([np.full((8, 8), 255, np.uint8), rgba[..., 3]], -1)  # white under alpha 0
    out = np.asarray(load_image(_bytes(Image.fromarray(la, "LA"), "PNG")))
    assert out[0, 0].tolist() == list(NEUTRAL) and out[0, 7].tolist() == [255] * 3
    half = rgba.copy()
    half[:, :4, 3] = 128  # half transparent: blended, not dropped
    out = np.asarray(load_image(_bytes(Image.fromarray(half, "RGBA"), "PNG"))).astype(int)
    assert abs(out[0, 0, 0] - (255 + NEUTRAL[0]) // 2) <= 2


def test_palette_with_and_without_transparency():
    p = Image.new("P", (8, 8), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (4, 0, 8, 8))
    out = np.asarray(load_image(_bytes(p, "PNG")))
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 7].tolist() == [0, 0, 255]
    out = np.asarray(load_image(_bytes(p, "PNG", transparency=0)))  # red is the hidden index
    assert out[0, 0].tolist() == list(NEUTRAL) and out[0, 7].tolist() == [0, 0, 255]
    out = np.asarray(load_image(_bytes(p, "GIF", transparency=0)))
    assert out[0, 0].tolist() == list(NEUTRAL)


def test_animated_gif_takes_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    assert np.asarray(load_image(path))[0, 0].tolist() == [255, 0, 0]
    apng = _bytes(frames[1], "PNG", save_all=True, append_images=frames[2:])
    assert np.asarray(load_image(apng))[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("pil_warning", ["error", "default"])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, pil_warning):
    """12000×12000 1-bit PNG: ~17 KB on disk, 144 megapixels (432 MB as RGB) if decoded.
    Refused whether PIL's own bomb warning is an error (as `pixsearch.images` sets it for the
    process) or only a warning (as pytest resets it): our header check comes first."""
    import warnings

    warnings.simplefilter(pil_warning, Image.DecompressionBombWarning)
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path, optimize=True)
    assert path.stat().st_size < 64_000
    with pytest.raises(ImageError, match="decompression bomb|megapixels"):
        load_image(path)
    with pytest.raises(ImageError, match="decompression bomb|megapixels"):
        load_image(path.read_bytes())
    # a bomb that fits PIL's own limit (9 megapixels) but not a tighter one of ours
    small = _bytes(Image.new("1", (3000, 3000)), "PNG", optimize=True)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(small, ImageLimits(max_pixels=1_000_000))
    strip = _bytes(Image.new("1", (20_000, 1)), "PNG")
    with pytest.raises(ImageError, match="longest side"):
        load_image(strip)


def test_byte_limit_is_checked_before_reading(tmp_path):
    data = _bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(ImageError, match="MiB; the limit"):
        load_image(data, ImageLimits(max_bytes=len(data) - 1))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="MiB; the limit"):
        load_image(path, ImageLimits(max_bytes=100))
    assert load_image(path, ImageLimits(max_bytes=len(data))).size == (64, 64)


@pytest.mark.parametrize("case", ["text", "html", "svg", "svg_xml", "eps", "empty_bytes",
                                  "truncated_png", "truncated_jpeg", "zero_file", "pdf"])
def test_non_images_and_broken_files_say_what_is_wrong(tmp_path, case):
    png = _bytes(Image.new("RGB", (64, 64), (9, 9, 9)), "PNG")
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    jpeg = _bytes(noisy, "JPEG")
    data, expect = {
        "text": (b"just some words\n", "not an image"),
        "html": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "SVG"),
        "svg_xml": (b'<?xml version="1.0"?>\n<svg width="9" height="9"></svg>', "SVG"),
        "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "not an image"),
        "empty_bytes": (b"", "empty"),
        "truncated_png": (png[: len(png) // 2], "truncated or corrupt|corrupt"),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], "truncated or corrupt|corrupt"),
        "zero_file": (b"", "empty"),
        "pdf": (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    }[case]
    with pytest.raises(ImageError, match=expect):
        load_image(data)
    path = tmp_path / f"{case}.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=expect) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_folders_and_missing_files(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageNotFoundError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for old callers
        load_image(str(tmp_path / "nope.jpg"))
    with pytest.raises(TypeError):
        load_image(12)  # type: ignore[arg-type]


def test_predictor_and_eval_worker_use_the_loader(tmp_path):
    """The predictor's and the eval worker's image readers are `load_image`."""
    from pixsearch.eval.worker import _image as worker_image
    from pixsearch.predictor import _image as predictor_image

    rgba, _ = _secret_pixels()
    path = tmp_path / "secret.png"
    Image.fromarray(rgba, "RGBA").save(path)
    for out in (predictor_image(path), worker_image({"id": "r", "image_path": str(path)})):
        assert np.asarray(out)[0, 0].tolist() == list(NEUTRAL)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb, optimize=True)
    for read in (lambda: predictor_image(bomb),
                 lambda: worker_image({"id": "r", "image_path": str(bomb)})):
        with pytest.raises(ImageError):
            read()
    assert predictor_image(None) is None


def test_loader_is_the_only_image_reader_of_the_entry_points():
    """No entry point opens user images with PIL directly any more."""
    src = Path(__file__).resolve().parents[1] / "src" / "pixsearch"
    for rel in ("predictor.py", "eval/worker.py", "cli/ask.py", "cli/demo.py", "cli/index.py"):
        assert "Image.open(" not in (src / rel).read_text(), rel


def test_a_bomb_costs_no_memory(tmp_path):
    """The issue's 17.6 KB PNG took 3.8 GB in the CLI; refused from its header, a whole
    process stays small (peak RSS measured in a fresh interpreter)."""
    import subprocess
    import sys

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb, optimize=True)
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec
    code = ("import re, sys\nfrom pixsearch.images import ImageError, load_image\n"
            "try:\n    load_image(sys.argv[1])\nexcept ImageError as e:\n    print(e)\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
            "print(int(hwm.group(1)) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True,
                         text=True, check=True, timeout=60).stdout.splitlines()
    assert "decompression bomb" in out[0]
    assert int(out[-1]) < 200, f"peak RSS {out[-1]} MB"
