"""The one image loader: every image a user hands in (CLI, HTTP API, evaluation records, the
predictor) is read by `load_image`, so every entry point reads the same pixels and refuses
the same bad inputs.

What it does, in order:

1. size limits before decoding: the byte size (file size or `len(bytes)`), then the pixel
   count and the longest side from the header (`Image.open` reads only the header). A tiny
   PNG that claims 12000×12000 pixels is refused here, before a byte of it is inflated; PIL's
   own decompression-bomb warning is turned into an error for the whole process (once, at
   import) so no other reader decodes one either.
2. only raster formats PIL decodes itself (`FORMATS`): no EPS (PIL would run Ghostscript on
   it), and SVG is named as what it is (a vector format; rasterise it first).
3. the first frame of an animated image (GIF, APNG, WebP, MPO).
4. EXIF orientation applied (`ImageOps.exif_transpose`): a phone photo with Orientation=6 is
   read upright, as a browser shows it.
5. modes converted to RGB correctly: 16-bit and 32-bit grayscale scaled to 8 bits (not
   clipped to white), CMYK and palette converted, transparency (alpha channel, palette or
   colour-key) composited on a neutral background so pixels hidden by alpha never show.

Every failure is an `ImageError` (a ValueError) that says what was wrong; a missing file is an
`ImageNotFoundError`, which is also a FileNotFoundError.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# ImageNet mean colour: what pixels hidden by transparency become (after normalisation a
# DINOv2-style encoder sees ~0 there); also the fill of suppressed background in region crops.
NEUTRAL: tuple[int, int, int] = (124, 116, 104)

# raster formats PIL decodes in-process (PIL's EPS plugin would run Ghostscript); JPEG covers
# the multi-picture MPO files of phones; AVIF where this Pillow was built with it
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "AVIF", "PPM",
                            "TGA", "ICO")

# PIL warns (and decodes anyway) between MAX_IMAGE_PIXELS and twice that; make it an error
# everywhere, so no reader of this process ever decodes such an image.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image that cannot be used: not an image, corrupt, too large, or of an odd kind."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """An image path that does not exist."""


@dataclass
class ImageLimits:
    """What `load_image` accepts.

    Attributes:
        max_bytes: largest encoded size (file or upload), checked before anything is read.
        max_pixels: largest width × height, checked from the header before decoding.
        max_side: longest side in pixels (a 1 × 40M-pixel strip is no photo either).
        formats: the PIL formats accepted (`FORMATS`).
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    formats: tuple[str, ...] = FORMATS

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_side) < 1:
            raise ValueError("image limits must be >= 1")


ImageSource = bytes | str | Path | Image.Image


def load_image(source: ImageSource, limits: ImageLimits | None = None) -> Image.Image:
    """`source` (encoded bytes, a file path, or a PIL image) as an upright RGB image; raises
    `ImageError` saying what is wrong (see the module docstring for what is checked)."""
    limits = limits or ImageLimits()
    if isinstance(source, Image.Image):
        _check_size(source.size, "the image", limits)
        return _to_rgb(_upright(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        what = f"the image ({len(data)} bytes)"
        _check_bytes(len(data), what, limits)
        return _decode(io.BytesIO(data), data[:512], what, limits)
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        what = f"image {path}"
        if not path.exists():
            raise ImageNotFoundError(f"{what} does not exist")
        if path.is_dir():
            raise ImageError(f"{what} is a folder, not an image file")
        _check_bytes(path.stat().st_size, what, limits)
        with path.open("rb") as f:
            head = f.read(512)
            f.seek(0)
            return _decode(f, head, what, limits)
    raise TypeError(f"load_image takes bytes, a path or a PIL image, not {type(source).__name__}")


def _check_bytes(n: int, what: str, limits: ImageLimits) -> None:
    if n == 0:
        raise ImageError(f"{what} is empty")
    if n > limits.max_bytes:
        raise ImageError(f"{what} is {n / 2**20:.1f} MiB; the limit is "
                         f"{limits.max_bytes / 2**20:.1f} MiB")


def _check_size(size: tuple[int, int], what: str, limits: ImageLimits) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{what} has no pixels ({w}×{h})")
    if max(w, h) > limits.max_side:
        raise ImageError(f"{what} is {w}×{h} pixels; the longest side may be at most "
                         f"{limits.max_side}")
    if w * h > limits.max_pixels:
        raise ImageError(f"{what} is {w}×{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                         f"{limits.max_pixels / 1e6:.1f} (refused before decoding)")


def _is_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text) or (
        text.startswith(b"<!doctype svg"))


def _decode(fp, head: bytes, what: str, limits: ImageLimits) -> Image.Image:
    """Header, limits, first frame, pixels — in that order."""
    if _is_svg(head):
        raise ImageError(f"{what} is an SVG (a vector drawing); convert it to PNG first")
    Image.init()  # registers the plugins (once) so that OPEN lists what this build reads
    formats = [f for f in limits.formats if f in Image.OPEN]
    try:
        im = Image.open(fp, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))  # PIL's message names the pixel count
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
        raise ImageError(f"{what} is a decompression bomb ({size}; the limit is "
                         f"{limits.max_pixels / 1e6:.1f}): refused before decoding") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{what} is not an image in a supported format "
                         f"({', '.join(formats)})") from e
    except (OSError, SyntaxError, ValueError) as e:  # a header PIL could not parse
        raise ImageError(f"{what} is corrupt: {e}") from e
    _check_size(im.size, what, limits)
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animated: the first frame only
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise ImageError(f"{what} could not be decoded (truncated or corrupt {im.format} "
                         f"data: {e})") from e
    return _to_rgb(_upright(im))


def _upright(im: Image.Image) -> Image.Image:
    """`im` turned as its EXIF Orientation says (unreadable EXIF: as stored)."""
    try:
        return ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return im  # a broken EXIF block must not cost the picture


_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB with the pixels a person would see (see the module docstring)."""
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode.startswith("I") or im.mode == "F":
        return Image.fromarray(_gray8(im)).convert("RGB")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*NEUTRAL, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV
    except ValueError as e:
        raise ImageError(f"images of mode {im.mode} are not supported: {e}") from e


def _gray8(im: Image.Image) -> np.ndarray:
    """8-bit grayscale of a 16/32-bit integer or float image, by the depth's own scale: a
    16-bit value v becomes v / 257, so the picture keeps its brightness."""
    a = np.asarray(im)
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
        scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0  # [0, 1] floats or [0, 255]
        return np.clip(np.nan_to_num(a * scale), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    sixteen = im.mode.startswith("I;16") or (a.size and a.max() > 255)
    return np.clip(a // 257 if sixteen else a, 0, 255).astype(np.uint8)
