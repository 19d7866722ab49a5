"""Reading what users point ``make predict`` at: photographs of any size and mode, folders, videos.

Images come out as (H, W, 3) uint8 RGB as displayed: the EXIF orientation is applied; grey, palette,
CMYK and RGBA images are converted (alpha is dropped); 16-bit and 32-bit integer or float images are
scaled to 8 bits by their type's range (16-bit: / 257) or, for float, by their own range. Videos are
read frame by frame with PyAV (FFmpeg) and written back as H.264 (yuv420p) MP4.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoWriter",
    "iter_frames",
    "list_inputs",
    "read_rgb",
    "to_rgb8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass
class Frame:
    """One picture to process: ``name`` (output prefix), ``source`` (the file), ``index`` (frame number of
    a video, None for a photo), ``rgb`` (H, W, 3) uint8."""

    name: str
    source: Path
    index: int | None
    rgb: np.ndarray


def list_inputs(path: str | Path) -> list[Path]:
    """A file, or the image and video files of a folder (sorted by name, not recursive)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: neither a file nor a folder")
    kinds = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in kinds)
    if not files:
        raise FileNotFoundError(f"{path}: no image ({', '.join(IMAGE_SUFFIXES)}) or video "
                                f"({', '.join(VIDEO_SUFFIXES)}) files")
    return files


def to_rgb8(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) uint8 RGB (see the module doc for the rules)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.uint16).astype(np.float64) / 257.0
    elif im.mode == "I":
        a = np.asarray(im, dtype=np.int64).astype(np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 else a  # 16-bit PNGs often open as mode I
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    else:
        return np.asarray(im.convert("RGB"))
    grey = np.clip(np.nan_to_num(a) + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of an image file as displayed; OSError naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = to_rgb8(ImageOps.exif_transpose(im))
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise OSError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise OSError(f"{path}: empty image {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _video_frames(path: Path, every: int) -> Iterator[tuple[int, np.ndarray]]:
    import av  # PyAV (FFmpeg): only for video inputs

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    yield i, frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, IndexError) as e:
        raise OSError(f"{path}: cannot read video ({type(e).__name__}: {e})") from None


def iter_frames(path: Path, every: int = 1) -> Iterator[Frame]:
    """The pictures of one input file: one for a photo, every ``every``-th frame for a video.
    Raises OSError naming the file (for a video: possibly after some frames were yielded)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        for i, rgb in _video_frames(path, max(1, int(every))):
            yield Frame(f"{path.stem}_f{i:06d}", path, i, rgb)
    else:
        yield Frame(path.stem, path, None, read_rgb(path))


def video_rate(path: Path) -> Fraction:
    """Frames per second of a video file (25 when the file does not say)."""
    import av

    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else Fraction(25)


class VideoWriter:
    """Writes (H, W, 3) uint8 frames to an H.264 MP4 (sizes rounded down to even numbers)."""

    def __init__(self, path: Path, rate: Fraction | float = 25) -> None:
        import av

        self.path = Path(path)
        self._av = av
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                                rate=Fraction(rate).limit_denominator(1001))
        self.stream.pix_fmt = "yuv420p"
        self._size: tuple[int, int] | None = None

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if self._size is None:
            self.stream.width, self.stream.height = w, h
            self._size = (h, w)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self._size[0], : self._size[1]]),
                                                 format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
