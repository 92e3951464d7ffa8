"""Reading and writing the files every dataset is made of: images as 8-bit RGB (or a one-line refusal), integer
label planes as stored, PNGs written atomically. ``data/dataset.py`` builds the datasets' readers on these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from samcache import fileio
from samcache.errors import SamcacheError

# PIL modes that become RGB without losing anything the encoder would see (alpha is dropped;
# 16-bit RGB PNGs open as "RGB" holding the high byte of each sample).
RGB_MODES = {"RGB": "RGB", "RGBA": "RGB drops alpha", "L": "gray to RGB", "P": "palette to RGB"}
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I")  # single channel, integer


def open_image_file(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise SamcacheError(f"missing {what} file {path}")
    try:
        image = Image.open(path)
        image.load()
        return image
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for broken files
        raise SamcacheError(f"cannot read {what} {path}: {exc}") from None


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; refuses modes that RGB cannot hold losslessly (16-bit gray, CMYK, float...)."""
    image = open_image_file(Path(path), "image")
    if image.mode not in RGB_MODES:
        raise SamcacheError(f"image {path} has PIL mode {image.mode} ({describe_mode(image.mode)}); samcache reads "
                            f"8-bit RGB, RGBA (alpha dropped), gray or palette images only")
    if image.mode == "P" and "transparency" in image.info:
        raise SamcacheError(f"image {path} is a palette PNG with transparency; save it as RGB")
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)


def integer_plane(path: Path, what: str) -> np.ndarray:
    """A single-channel integer PNG as it is stored (a palette PNG: its indices)."""
    image = open_image_file(path, what)
    if image.mode not in LABEL_MODES:
        raise SamcacheError(f"{what} file {path} has PIL mode {image.mode} ({describe_mode(image.mode)}); "
                            f"expected a single-channel integer PNG")
    values = np.asarray(image)
    if values.ndim != 2:
        raise SamcacheError(f"{what} file {path} is not a single-channel PNG")
    return values


def first_bad(values: np.ndarray, ok: np.ndarray) -> str:
    y, x = (int(v[0]) for v in np.nonzero(~ok))
    return f"value {int(values[y, x])} at (x={x}, y={y})"


def describe_ids(ids: list[int]) -> str:
    """'0..33' for a run of ids, '0..18, 255' for two."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}..{b}" if b > a else str(a) for a, b in runs)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) from the image header, without decoding pixels."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise SamcacheError(f"missing image file {path}") from None
    except Exception as exc:
        raise SamcacheError(f"cannot read image {path}: {exc}") from None
    return height, width


def describe_mode(mode: str) -> str:
    return {"I;16": "16-bit gray", "I;16B": "16-bit gray", "I": "32-bit integer", "F": "32-bit float",
            "CMYK": "CMYK", "1": "1-bit", "LA": "gray with alpha", "PA": "palette with alpha",
            "RGB": "8-bit RGB", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}.get(mode, "unsupported")


def save_png(array: np.ndarray, path: Path, palette: np.ndarray | None = None) -> None:
    """An atomic PNG (a palette PNG with ``palette``, (256, 3) uint8), its folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        if palette is None:
            image = Image.fromarray(array)
        else:  # the values are the palette indices, as they are
            values = np.ascontiguousarray(array, np.uint8)
            image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
            image.putpalette(palette.astype(np.uint8).ravel().tolist())
        image.save(tmp, format="PNG")

    fileio.write_with(path, write)
