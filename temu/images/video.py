"""Video files -> sampled frames at the model's input size, decoded one at a time (PyAV: ``temu-iqa[video]``).

The sampling rule (README, "Video"). Times are seconds from the first frame's presentation time
(``pts * time_base``, so variable frame rates are handled by timestamps, not frame counts), and
the frame *shown* at time ``t`` is the last frame whose presentation time is <= ``t``:

- ``fps=R`` (default 1.0): the frames shown at ``t_k = k / R``, k = 0, 1, ..., for every ``t_k``
  up to the last frame's time (a clip shorter than one interval gives its first frame);
- ``frames=N``: the frames shown at the centres of N equal parts of the clip's duration D,
  ``t_k = (k + 1/2) * D / N``, k = 0 .. N-1. D runs from the first frame to the end of the last one:
  the presentation time of its last packet plus that packet's duration, found by reading the
  packets without decoding them (an MP4's recorded duration can fall short of the last frame);
- ``frames="all"``: every frame.

A clip whose rule asks for more than ``max_frames`` samples is that clip's error. A frame can be
the sample of several times (``fps`` above the clip's frame rate). Each sample is reported with
the frame's own presentation time (from the first frame), not the sampling time.

Frames are turned upright by the display matrix (a phone's ``rotate`` metadata; read once per clip,
from the first frame converted) as FFmpeg's own autorotation turns them, and as EXIF orientation turns photos; 8-bit video becomes
uint8 RGB (``rgb24``), deeper video float32 in [0, 1] (``rgb48``). ``max_side`` first shrinks a
frame whose long side is longer, as VBench's ``imaging_quality`` does (torchvision bilinear
without antialiasing, sides truncated to integers); then the model's own resize rule applies.

A truncated file is an error, not a shorter clip: frames its index places beyond the file's end,
or frames that end more than max(0.25 s, 2 frames) before the duration the file records.

Only the frame being decoded and the sampled frames at the model's input size are held: a clip
is never in memory whole. Where the next sampling time lies more than :data:`SEEK_GAP` seconds
past the last decoded frame, the reader seeks to the keyframe before it and decodes forward, so
sparse sampling of a long clip skips most of it; the samples are the same frames as without
seeking (a seek that lands past the time is retried earlier, and one that lands behind the last
decoded frame raises the gap for the rest of the clip).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch

from ..errors import InvalidInputError, TeMuWarning, VideoOptionsError, VideoReadError, os_reason
from .decode import check_file, orient
from .transforms import InputSize

#: Seconds between the last decoded frame and the next sampling time beyond which the reader seeks.
SEEK_GAP = 2.0

#: What the extra is called, in messages.
EXTRA_HINT = 'reading videos needs PyAV, which is not installed: pip install "temu-iqa[video]"'

VideoInput = str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a video are scored (see the module docstring for the rule).

    Attributes:
        fps: samples per second of the clip; None: 1.0 unless ``frames`` is given.
        frames: N (evenly spread over the duration) or ``"all"``; None: sample by ``fps``.
        max_frames: the most samples a clip may need; a clip needing more is its error. None: no limit.
        max_side: frames whose long side is longer are first shrunk to it (VBench's rule); None: not.

    Raises:
        VideoOptionsError: a value out of range, or both ``fps`` and ``frames``.
    """

    fps: float | None = None
    frames: int | Literal["all"] | None = None
    max_frames: int | None = None
    max_side: int | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and (
            isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not math.isfinite(self.fps)
            or self.fps <= 0
        ):  # fmt: skip
            raise VideoOptionsError(f"fps must be a positive number of frames per second, got {self.fps!r}")
        if self.frames is not None and self.frames != "all" and not _positive_int(self.frames):
            raise VideoOptionsError(f"frames must be a positive int or 'all', got {self.frames!r}")
        if self.fps is not None and self.frames is not None:
            raise VideoOptionsError(
                f"give fps or frames, not both (got fps={self.fps!r}, frames={self.frames!r}): fps samples by "
                "time, frames a fixed number per clip"
            )
        for option in ("max_frames", "max_side"):
            value = getattr(self, option)
            if value is not None and not _positive_int(value):
                raise VideoOptionsError(f"{option} must be a positive int or None, got {value!r}")
        if _positive_int(self.frames) and self.max_frames is not None and self.frames > self.max_frames:
            raise VideoOptionsError(
                f"frames={self.frames} asks for more samples per clip than max_frames={self.max_frames}"
            )

    @property
    def rate(self) -> float | None:
        """Samples per second (None with ``frames``)."""
        return None if self.frames is not None else float(self.fps if self.fps is not None else 1.0)

    def describe(self) -> str:
        """The rule in a few words: ``"fps=1.0"``, ``"frames=8"`` or ``"frames=all"``."""
        return f"fps={self.rate}" if self.frames is None else f"frames={self.frames}"


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def import_av(name: str) -> Any:
    """The ``av`` module; a :class:`~temu.errors.VideoReadError` naming ``name`` and the extra when PyAV is missing."""
    try:
        import av
    except ImportError:
        raise VideoReadError(name, EXTRA_HINT) from None
    return av


def _open(av: Any, video: VideoInput, name: str) -> Any:
    source = io.BytesIO(video) if isinstance(video, (bytes, bytearray, memoryview)) else os.fspath(video)
    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except PermissionError:
        raise VideoReadError(name, "permission denied: the file cannot be opened for reading") from None
    except av.error.FFmpegError as err:
        raise VideoReadError(name, f"not a video file FFmpeg can read ({_ffmpeg_reason(err)})") from None
    except OSError as err:
        raise VideoReadError(name, f"cannot read the file ({os_reason(err)})") from None


def _ffmpeg_reason(err: BaseException) -> str:
    """An FFmpeg error in a few words: its message without the file name PyAV appends."""
    strerror = getattr(err, "strerror", None)
    return str(strerror or err)


def probe(video: VideoInput) -> bool:
    """Whether ``video`` opens in FFmpeg (PyAV) as a video: a container with a video stream, not one of
    FFmpeg's still-image readers (which it picks by a file's name alone). False when PyAV is not installed."""
    try:
        av = import_av("")
        with _open(av, video, "") as container:
            names = set(container.format.name.split(","))
            return bool(container.streams.video) and not any(
                n.startswith("image2") or n.endswith("_pipe") for n in names
            )
    except Exception:  # noqa: BLE001 (whatever fails to open is not a video)
        return False


def _video_stream(container: Any, name: str) -> Any:
    if not container.streams.video:
        audio = " (audio only)" if container.streams.audio else ""
        raise VideoReadError(name, f"has no video stream{audio}")
    stream = container.streams.video[0]
    codec = stream.codec_context
    if codec is None or getattr(codec, "codec", None) is None:
        tag = getattr(stream.codec_context, "codec_tag", None) or "unknown"
        raise VideoReadError(name, f"its video codec ({tag}) cannot be decoded by this FFmpeg build")
    stream.thread_type = "AUTO"
    return stream


def display_orientation(matrix: Sequence[int]) -> int | None:
    """The EXIF orientation (1-8) that turns a frame upright for an FFmpeg display matrix (9 ints,
    ``AV_FRAME_DATA_DISPLAYMATRIX`` layout), read as FFmpeg's own autorotation reads it: the angle
    ``atan2(m[1], m[0])`` (clockwise degrees to turn the frame) and the signs of ``m[0]``, ``m[3]``,
    ``m[4]`` for mirroring. None for an angle that is not a multiple of 90 degrees."""
    m0, m1, m3, m4 = (float(matrix[i]) for i in (0, 1, 3, 4))
    scale0, scale1 = math.hypot(m0, m3), math.hypot(m1, m4)
    if scale0 == 0 or scale1 == 0:
        return None
    theta = round(math.degrees(math.atan2(m1 / scale1, m0 / scale0))) % 360
    if theta == 90:
        return 5 if m3 > 0 else 6  # transposed / turned clockwise
    if theta == 180:
        return {(True, True): 3, (True, False): 2, (False, True): 4}.get((m0 < 0, m4 < 0), 1)
    if theta == 270:
        return 7 if m3 < 0 else 8  # transverse / turned counter-clockwise
    if theta == 0:
        return 4 if m4 < 0 else 1
    return None


def _display_matrix(frame: Any) -> np.ndarray | None:
    """The frame's display matrix (9 ints), or None. Read from a 2x2 copy of the frame (its side data
    copied with it): PyAV 18's ``frame.side_data`` ties the frame into a reference cycle, and a decoded
    1080p frame left to the cyclic garbage collector is 3 MB that RSS keeps until a collection runs."""
    for data in frame.reformat(width=2, height=2, threads=1).side_data:
        if getattr(data.type, "name", str(data.type)).endswith("DISPLAYMATRIX"):
            return np.frombuffer(bytes(data), dtype="<i4").copy()
    return None


def shrink_long_side(pixels: torch.Tensor, max_side: int) -> torch.Tensor:
    """``[..., H, W]`` pixels whose long side exceeds ``max_side`` resized as VBench's ``imaging_quality``
    resizes ("longer" mode): to ``(int(s * H), int(s * W))`` with ``s = max_side / max(H, W)``, bilinear
    without antialiasing (torchvision), uint8 kept uint8. Others are returned as they are."""
    height, width = pixels.shape[-2:]
    if max(height, width) <= max_side:
        return pixels
    from torchvision.transforms.functional import InterpolationMode, resize  # VBench's transforms.Resize (v1)

    scale = max_side / max(height, width)
    size = [max(1, int(scale * height)), max(1, int(scale * width))]
    return resize(pixels, size, interpolation=InterpolationMode.BILINEAR, antialias=False)


def sample_frames(
    video: VideoInput,
    sampling: VideoSampling | None = None,
    input_size: InputSize | None = None,
    *,
    name: str | None = None,
) -> Iterator[tuple[float, torch.Tensor]]:
    """The sampled frames of a video file (a path) or of its bytes, one at a time.

    Args:
        video: a path, or the file's bytes.
        sampling: the rule (default: one frame per second).
        input_size: the model's resize rule (``model.input_size``); None: frames at their own size.
        name: what errors call the video (default: the path, or ``"<video bytes>"``).

    Yields:
        ``(time, pixels)``: seconds from the first frame, and ``[3, h, w]`` pixels, upright (uint8 for
        8-bit video, else float32 in [0, 1]), contiguous, at ``input_size``.

    Raises:
        VideoReadError: the file cannot be read or sampled (also while frames are being yielded: a
            truncated file fails where its data ends), or PyAV is not installed.
    """
    sampling = sampling or VideoSampling()
    is_bytes = isinstance(video, (bytes, bytearray, memoryview))
    name = name if name is not None else ("<video bytes>" if is_bytes else os.fspath(video))
    if not is_bytes:
        check_file(video, "a video", VideoReadError)  # missing, a folder, a named pipe (never opened), empty
    elif len(video) == 0:
        raise VideoReadError(name, "the video data is empty (0 bytes)")
    av = import_av(name)
    reader = _Reader(av, video, sampling, input_size, name)
    try:
        yield from reader.samples()
    except (VideoReadError, InvalidInputError):
        raise
    except av.error.FFmpegError as err:
        raise VideoReadError(name, f"{reader.where()}cannot be decoded ({_ffmpeg_reason(err)})") from None
    except Exception as err:  # noqa: BLE001 (one clip's failure is that clip's error)
        raise VideoReadError(
            name, f"{reader.where()}cannot be decoded (unexpected {type(err).__name__}: {err})"
        ) from err
    finally:
        reader.close()


class _Reader:
    """One clip's container, decoder position and samples (see :func:`sample_frames`)."""

    def __init__(self, av: Any, video: VideoInput, sampling: VideoSampling, input_size: InputSize | None, name: str):
        self.av, self.video, self.sampling, self.input_size, self.name = av, video, sampling, input_size, name
        self.container = _open(av, video, name)
        try:
            self.stream = _video_stream(self.container, name)
        except BaseException:
            self.container.close()
            raise
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else Fraction(1, 1)
        self.frames = self.container.decode(self.stream)
        self.origin: Fraction | None = None  # presentation time of the first frame
        self.last: Fraction | None = None  # time of the last decoded frame (from origin)
        self.length = Fraction(0)  # how long the last decoded frame is shown, when known
        self.gap = Fraction(SEEK_GAP)
        self.can_seek = True
        self.count = 0
        self.orientation: int | None = None
        rate = self.stream.guessed_rate or self.stream.average_rate
        self.step = Fraction(1, 1) / Fraction(rate) if rate else None  # for frames without a timestamp
        try:
            self.check_index()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.frames.close()
        self.container.close()

    def where(self) -> str:
        return f"after {float(self.last):.3f} s: " if self.last is not None else ""

    # ------------------------------------------------------------------ decoding

    def next_frame(self) -> tuple[Any, Fraction] | None:
        """The next frame in presentation order and its time from the origin; None at the end."""
        frame = next(self.frames, None)
        if frame is None:
            if self.last is not None:
                self.check_end(self.last + self.length)
            return None
        if frame.duration:
            self.length = frame.duration * Fraction(frame.time_base or self.time_base)
        else:
            self.length = self.step or Fraction(0)
        if frame.pts is not None:
            absolute = frame.pts * Fraction(frame.time_base or self.time_base)
        elif self.last is not None and self.step is not None and self.origin is not None:
            absolute = self.origin + self.last + self.step
        elif self.last is None:
            absolute = Fraction(0)
        else:
            raise VideoReadError(self.name, "its frames have no timestamps and the stream no frame rate")
        if self.origin is None:
            self.origin = absolute
        self.last = absolute - self.origin
        return frame, self.last

    def seek(self, target: Fraction) -> tuple[Any, Fraction] | None:
        """Seek to the keyframe at or before ``target`` (seconds from the origin) and decode its first
        frame; None if the stream cannot seek (then decoding goes on where it was)."""
        before = self.last
        back = Fraction(0)
        for _ in range(4):
            goal = max(Fraction(0), target - back)
            try:
                self.container.seek(
                    math.floor((self.origin + goal) / self.time_base), stream=self.stream, backward=True
                )
            except (self.av.error.FFmpegError, OSError, ValueError):
                self.can_seek = False
                return None
            self.stream.codec_context.flush_buffers()
            self.frames.close()
            self.frames = self.container.decode(self.stream)
            landed = self.next_frame()
            if landed is not None and landed[1] <= target:
                if before is not None and landed[1] <= before:  # keyframes lie further apart than the gap
                    self.gap = max(self.gap, 2 * (target - landed[1]))
                return landed
            if goal == 0:
                break
            back = 2 * back + (landed[1] - target if landed is not None else 0) + Fraction(SEEK_GAP)
        self.restart()  # no seek lands before the target: decode from the start, seeking no more
        return self.next_frame()

    def restart(self) -> None:
        """Decode from the first frame again, in a new container, and seek no more."""
        self.frames.close()
        self.container.close()
        self.container = _open(self.av, self.video, self.name)
        self.stream = _video_stream(self.container, self.name)
        self.frames = self.container.decode(self.stream)
        self.can_seek = False

    def check_index(self) -> None:
        """A file shorter than its own index (an MP4 cut short: its frames are listed, not there) is truncated."""
        try:
            end = max((e.pos + e.size for e in self.stream.index_entries if e.pos >= 0), default=0)
        except Exception:  # noqa: BLE001 (a container without an index to read)
            return
        size = (
            len(self.video) if isinstance(self.video, (bytes, bytearray, memoryview)) else os.path.getsize(self.video)
        )
        if end > size:
            raise VideoReadError(
                self.name, f"truncated: the file has {size:,} bytes, but its index places frames up to byte {end:,}"
            )

    def recorded_end(self) -> Fraction | None:
        """Where the file says the video stream ends (seconds from the origin): the stream's duration, or its
        Matroska ``DURATION`` tag, or the container's duration when the video is its only stream; None if unknown."""
        stream = self.stream
        start = (stream.start_time or 0) * self.time_base
        if stream.duration:
            return start + stream.duration * self.time_base - self.origin
        tag = next((v for k, v in (stream.metadata or {}).items() if k.upper() == "DURATION"), None)
        if tag:
            try:
                hours, minutes, seconds = tag.strip().split(":")
                return start + 3600 * int(hours) + 60 * int(minutes) + Fraction(seconds) - self.origin
            except ValueError:
                pass
        container = self.container
        if len(container.streams) == 1 and container.duration:
            return (
                Fraction(container.start_time or 0, 1_000_000) + Fraction(container.duration, 1_000_000) - self.origin
            )
        return None

    def check_end(self, seen: Fraction) -> None:
        """Frames that end well before the end the file records (``seen`` vs :meth:`recorded_end`): truncated."""
        recorded = self.recorded_end()
        slack = max(Fraction(1, 4), 2 * (self.step or 0))
        if recorded is not None and seen + slack < recorded:
            raise VideoReadError(
                self.name,
                f"truncated: its frames end at {float(seen):.3f} s, but the file says the video lasts "
                f"{float(recorded):.3f} s",
            )

    def end_time(self) -> Fraction:
        """The end of the last frame in seconds from the origin: the latest presentation time among the
        stream's packets plus that packet's duration (the packets are read, not decoded)."""
        last, length = None, 0
        with _open(self.av, self.video, self.name) as container:
            scan = container.streams.video[0]
            for packet in container.demux(scan):
                if packet.pts is not None and not packet.is_discard and (last is None or packet.pts > last):
                    last, length = packet.pts, packet.duration or 0
            time_base = Fraction(scan.time_base)
        end = (last + length) * time_base - self.origin if last is not None else Fraction(0)
        self.check_end(end)
        return end

    # ------------------------------------------------------------------ sampling

    def targets(self) -> Iterator[Fraction]:
        if self.sampling.frames is not None:
            n = self.sampling.frames
            duration = max(Fraction(0), self.end_time())
            for k in range(n):
                yield (2 * k + 1) * duration / (2 * n)
            return
        rate = Fraction(repr(self.sampling.rate))  # fps=0.1 means 1/10 exactly, not the nearest binary float
        k = 0
        while True:
            yield k / rate
            k += 1

    def samples(self) -> Iterator[tuple[float, torch.Tensor]]:
        first = self.next_frame()
        if first is None:
            raise VideoReadError(self.name, "has no frames (its video stream holds no decodable frame)")
        if self.sampling.frames == "all":
            current: tuple[Any, Fraction] | None = first
            while current is not None:
                yield self.emit(*current)
                current = self.next_frame()
            return
        bounded = self.sampling.frames is not None  # frames=N: every target gets a frame
        prev, ahead = first, None
        converted: tuple[Any, torch.Tensor] | None = None
        ended = False
        for target in self.targets():
            sought = False
            while not ended:
                if ahead is None:
                    if not sought and self.can_seek and target - prev[1] > self.gap:
                        sought = True
                        landed = self.seek(target)
                        if landed is not None:
                            prev = landed
                            continue
                    ahead = self.next_frame()
                    if ahead is None:
                        ended = True
                        break
                if ahead[1] > target:
                    break
                prev, ahead = ahead, None
            if ended and not bounded and target > prev[1]:
                return  # fps: no sampling time after the last frame
            if converted is None or converted[0] is not prev[0]:
                converted = (prev[0], self.pixels(prev[0]))
            yield self.count_sample(prev[1]), converted[1]

    def emit(self, frame: Any, time: Fraction) -> tuple[float, torch.Tensor]:
        return self.count_sample(time), self.pixels(frame)

    def count_sample(self, time: Fraction) -> float:
        limit = self.sampling.max_frames
        if limit is not None and self.count >= limit:
            raise VideoReadError(
                self.name,
                f"the sampling rule ({self.sampling.describe()}) asks for more than max_frames={limit} frames "
                f"(one more at {float(time):.3f} s); sample fewer (a lower fps, or frames=N) or raise max_frames",
            )
        self.count += 1
        return float(time)

    def read_orientation(self, frame: Any) -> int:
        """The EXIF-style orientation (1-8) of ``frame``'s display matrix; 1 (as stored) without one, or
        with a :class:`~temu.errors.TeMuWarning` for an angle that is not a multiple of 90 degrees."""
        matrix = _display_matrix(frame)
        if matrix is None:
            return 1
        orientation = display_orientation(matrix)
        if orientation is None:
            warnings.warn(
                f"{self.name}: its display matrix turns frames by an angle that is not a multiple of 90 degrees; "
                "scored as stored",
                TeMuWarning,
                stacklevel=4,
            )
            return 1
        return orientation

    def pixels(self, frame: Any) -> torch.Tensor:
        """One decoded frame -> ``[3, h, w]`` pixels, upright, at the input size."""
        # threads=1: no swscale slice threads. Their context, freed in a forked DataLoader worker that
        # inherited it, joins threads that do not exist there (a segfault); the loader's workers run in parallel.
        if any(component.bits > 8 for component in frame.format.components):
            array = frame.to_ndarray(format="rgb48le", threads=1)
            pixels = torch.from_numpy(array.astype(np.float32) / 65535.0).permute(2, 0, 1)
        else:
            pixels = torch.from_numpy(frame.to_ndarray(format="rgb24", threads=1)).permute(2, 0, 1)
        if self.orientation is None:  # the clip's display matrix, read from its first converted frame
            self.orientation = self.read_orientation(frame)
        pixels = orient(pixels, self.orientation)
        if self.sampling.max_side is not None:
            pixels = shrink_long_side(pixels, self.sampling.max_side)
        if self.input_size is not None:
            pixels = self.input_size(pixels, name=self.name)
        return pixels.contiguous()
