"""Procedurally generated image tasks for transfer experiments without downloads:
``synthetic:source`` to pre-train on, ``synthetic:near`` and ``synthetic:far`` to transfer to.

*source* and *near* share one bank of ten shape primitives (disk, ring, square outline,
triangle, plus, diagonal cross, bar, slanted stroke, striped disk, checkered square). An
image shows two different primitives on a noisy background; its class is the unordered
pair. With the primitives on a circle, source classes are the 20 pairs one or two steps
apart and near classes the 10 pairs three steps apart: near classes are new compositions
of primitives the source taught, each primitive used by 4 source and 2 near classes.

*far* classes are full-field textures with other low-level statistics: isoluminant colour
modulation (the source's shapes are defined by luminance) summed from sinusoids, no objects;
a class is an (orientation set, spatial frequency) pair.

Classes are invariant to horizontal flips (every primitive is mirrored with probability 1/2;
texture orientation sets are closed under mirroring) and to translations of an eighth of
the image (primitives sit anywhere in the central part; textures are stationary). Position,
scale, rotation, colours, contrast, background ramp and blots, and pixel noise vary per
image.

Scene parameters come from one ``numpy.random.default_rng`` stream per (task, split) and
pixel noise from one per (task, split, size), so every size renders the same scenes and the
same (task, split, size) always gives the same bytes. Rendering is vectorised over the
images of a class. docs/synthetic.md has the details and the measured transfer effect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from finetune.data.imageset import ImageSet, TensorImageSet
from finetune.data.registry import BuildRequest, register_dataset
from finetune.errors import UnknownDatasetError

TASKS = ("source", "near", "far")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
PER_CLASS = {
    "source": {"train": 500, "val": 20, "test": 50},
    "near": {"train": 200, "val": 20, "test": 100},
    "far": {"train": 200, "val": 20, "test": 100},
}
SEED = 20240917
LUMA = np.array([0.299, 0.587, 0.114])

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]


# Primitives: signed distance (negative inside) in the primitive's own frame: x right,
# y down, unit = the primitive's radius.

def _box(x: np.ndarray, y: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(x) - half_w, np.abs(y) - half_h)


def _diagonal(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned by 45 degrees."""
    return (x + y) * np.sqrt(0.5), (x - y) * np.sqrt(0.5)


def _disk(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.hypot(x, y) - 0.8


def _ring(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(np.hypot(x, y) - 0.72) - 0.2


def _square(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(np.maximum(np.abs(x), np.abs(y)) - 0.68) - 0.2


def _triangle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    side = (np.abs(x) - 0.62 * (y + 0.85)) / np.hypot(1.0, 0.62)
    return np.maximum(y - 0.65, side)


def _plus(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.minimum(_box(x, y, 0.9, 0.2), _box(x, y, 0.2, 0.9))


def _cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _plus(*_diagonal(x, y))


def _bar(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _box(x, y, 1.0, 0.24)


def _slash(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _bar(*_diagonal(x, y))


def _stripes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = np.pi * 2.2
    return np.maximum(np.hypot(x, y) - 0.9, -np.sin(k * y) / k)


def _checker(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = np.pi * 1.6
    return np.maximum(_box(x, y, 0.8, 0.8), -np.sin(k * x) * np.sin(k * y) / k)


PRIMITIVES: dict[str, Field] = {
    "disk": _disk,
    "ring": _ring,
    "square": _square,
    "triangle": _triangle,
    "plus": _plus,
    "cross": _cross,
    "bar": _bar,
    "slash": _slash,
    "stripes": _stripes,
    "checker": _checker,
}
SHAPE_STEPS = {"source": (1, 2), "near": (3,)}

# Far classes: (name, orientations of the wave vectors in radians, closed under mirroring,
# frequency in cycles per image side).
_ORIENTATIONS = {
    "horizontal": (np.pi / 2,),
    "vertical": (0.0,),
    "oblique": (np.pi / 4, -np.pi / 4),
    "grid": (0.0, np.pi / 2),
    "isotropic": tuple(np.arange(8) * np.pi / 8),
}
FAR_CLASSES: tuple[tuple[str, tuple[float, ...], float], ...] = tuple(
    (f"{orient}-{band}", angles, freq)
    for orient, angles in _ORIENTATIONS.items()
    for band, freq in (("coarse", 4.0), ("fine", 7.0))
)
FAR_WAVES = 6
BLOTS = 3


def shape_classes(task: str) -> tuple[tuple[str, str], ...]:
    """The primitive pairs that are the classes of ``source`` (20) or ``near`` (10)."""
    names = list(PRIMITIVES)
    return tuple(
        (names[i], names[(i + step) % len(names)])
        for step in SHAPE_STEPS[task]
        for i in range(len(names))
    )


def class_names(task: str) -> list[str]:
    """Readable class names of ``task``, in label order."""
    if task == "far":
        return [name for name, _, _ in FAR_CLASSES]
    return [f"{a}+{b}" for a, b in shape_classes(task)]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in image units [0, 1], shaped (1, size, 1) and (1, 1, size)."""
    centres = (np.arange(size) + 0.5) / size
    return centres[None, :, None], centres[None, None, :]


def _col(values: np.ndarray) -> np.ndarray:
    """Per-image values (n,) shaped to broadcast against (n, H, W)."""
    return values[:, None, None]


def _backgrounds(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-image background parameters: tinted grey, linear ramp, BLOTS soft colour blots,
    pixel-noise level."""
    luma = rng.uniform(0.2, 0.8, n)
    return {
        "base": np.clip(luma[:, None] + rng.uniform(-0.12, 0.12, (n, 3)), 0.0, 1.0),
        "ramp_angle": rng.uniform(0, 2 * np.pi, n),
        "ramp": rng.uniform(0.0, 0.15, n),
        "blot_centre": rng.uniform(0.0, 1.0, (n, BLOTS, 2)),
        "blot_width": rng.uniform(0.08, 0.2, (n, BLOTS)),
        "blot_colour": rng.uniform(-0.2, 0.2, (n, BLOTS, 3)),
        "noise": rng.uniform(0.03, 0.1, n),
    }


def _canvas(bg: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Backgrounds (n, 3, H, W) without pixel noise: base colour, ramp and Gaussian blots
    (nuisance structure that pre-training learns to ignore)."""
    y, x = _grid(size)
    angle = bg["ramp_angle"]
    ramp = _col(bg["ramp"]) * (
        (x - 0.5) * _col(np.cos(angle)) + (y - 0.5) * _col(np.sin(angle))
    )
    canvas = bg["base"][:, :, None, None] + ramp[:, None]
    for k in range(BLOTS):
        centre, width = bg["blot_centre"][:, k], _col(bg["blot_width"][:, k])
        r2 = (x - _col(centre[:, 0])) ** 2 + (y - _col(centre[:, 1])) ** 2
        canvas += np.exp(-r2 / (2 * width**2))[:, None] * bg["blot_colour"][:, k, :, None, None]
    return canvas


def _contrasting(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Random colours (n, 3) whose luminance differs from ``base``'s by 0.2 to 0.5,
    brighter or darker at random where both fit in [0, 1]."""
    n = len(base)
    colour = rng.uniform(0.0, 1.0, (n, 3))
    step = rng.uniform(0.2, 0.5, n)
    coin = rng.choice([-1.0, 1.0], n)
    base_luma = base @ LUMA
    up, down = base_luma + step <= 1.0, base_luma - step >= 0.0
    sign = np.where(up & down, coin, np.where(up, 1.0, -1.0))
    target = base_luma + sign * step
    return np.clip(colour - (colour @ LUMA)[:, None] + target[:, None], 0.0, 1.0)


def _paint(canvas: np.ndarray, field: Field, p: dict[str, np.ndarray]) -> None:
    """Alpha-blend one primitive per image into ``canvas`` (n, 3, H, W), anti-aliased over
    one pixel. ``p`` holds per-image centre (n, 2), radius, angle, mirror (+-1), colour."""
    size = canvas.shape[-1]
    y, x = _grid(size)
    radius = _col(p["radius"])
    dx, dy = (x - _col(p["centre"][:, 0])) / radius, (y - _col(p["centre"][:, 1])) / radius
    cos, sin = _col(np.cos(p["angle"])), _col(np.sin(p["angle"]))
    u, v = (cos * dx + sin * dy) * _col(p["mirror"]), cos * dy - sin * dx
    alpha = np.clip(0.5 - field(u, v) * radius * size, 0.0, 1.0)[:, None]
    canvas += alpha * (p["colour"][:, :, None, None] - canvas)


def _primitive_params(
    rng: np.random.Generator, centre: np.ndarray, base: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-image nuisance of one primitive slot: scale, small rotation, mirror, colour."""
    n = len(centre)
    return {
        "centre": centre,
        "radius": rng.uniform(0.13, 0.19, n),
        "angle": rng.uniform(-0.3, 0.3, n),
        "mirror": rng.choice([-1.0, 1.0], n),
        "colour": _contrasting(rng, base),
    }


def _shape_scenes(rng: np.random.Generator, n: int) -> dict:
    """Background and two primitive slots per image: the slots sit on opposite sides of a
    jittered centre, along a random heading, so they rarely overlap."""
    bg = _backgrounds(rng, n)
    middle = 0.5 + rng.uniform(-0.07, 0.07, (n, 2))
    heading = rng.uniform(0, 2 * np.pi, n)
    offset = rng.uniform(0.19, 0.23, n)[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
    slots = [_primitive_params(rng, c, bg["base"]) for c in (middle + offset, middle - offset)]
    return {"bg": bg, "slots": slots}


def _draw_shapes(pair: tuple[str, str], scene: dict, size: int) -> np.ndarray:
    """Images (n, 3, H, W) of one shape class, before pixel noise."""
    canvas = _canvas(scene["bg"], size)
    for name, slot in zip(pair, scene["slots"], strict=True):
        _paint(canvas, PRIMITIVES[name], slot)
    return canvas


def _isoluminant(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random unit colour directions (n, 3) that leave luminance unchanged."""
    direction = rng.normal(size=(n, 3))
    direction -= (direction @ LUMA)[:, None] * LUMA / (LUMA @ LUMA)
    return direction / np.linalg.norm(direction, axis=1, keepdims=True)


def _texture_scenes(rng: np.random.Generator, labels: np.ndarray) -> dict:
    """Per-image texture parameters of ``far``: FAR_WAVES sinusoids whose orientations are
    drawn from the class's set (jittered) and whose frequency is the class's, jittered by
    10%; a random isoluminant colour direction and amplitude; the background."""
    n, shape = len(labels), (len(labels), FAR_WAVES)
    # sets of 1, 2 or 8 orientations tiled to 8: a uniform pick is uniform over the set
    angles = np.array([np.resize(angles, 8) for _, angles, _ in FAR_CLASSES])
    freqs = np.array([freq for _, _, freq in FAR_CLASSES])
    picks = rng.integers(0, 8, shape)
    return {
        "angle": angles[labels[:, None], picks] + rng.uniform(-0.15, 0.15, shape),
        "freq": 2 * np.pi * freqs[labels][:, None] * rng.uniform(0.9, 1.1, shape),
        "phase": rng.uniform(0, 2 * np.pi, shape),
        "chroma": _isoluminant(rng, n) * rng.uniform(0.2, 0.35, n)[:, None],
        "bg": _backgrounds(rng, n),
    }


def _draw_texture(scene: dict, size: int) -> np.ndarray:
    """Images (n, 3, H, W) of far textures, before pixel noise."""
    y, x = _grid(size)
    texture = np.zeros((len(scene["phase"]), size, size))
    for wave in range(FAR_WAVES):
        freq, angle = scene["freq"][:, wave], scene["angle"][:, wave]
        texture += np.sin(_col(freq * np.cos(angle)) * x + _col(freq * np.sin(angle)) * y
                          + _col(scene["phase"][:, wave]))
    texture /= np.sqrt(FAR_WAVES / 2)
    return _canvas(scene["bg"], size) + texture[:, None] * scene["chroma"][:, :, None, None]


def _take(tree: dict | list | np.ndarray, rows: slice) -> dict | list | np.ndarray:
    """The rows of every array in a nest of dicts and lists."""
    if isinstance(tree, dict):
        return {key: _take(value, rows) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_take(value, rows) for value in tree]
    return tree[rows]


@functools.lru_cache(maxsize=16)
def synthetic_arrays(task: str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, size, size) and int64 labels of one split of ``task``, sorted
    by label; cached, so the arrays are read-only. Drawn one class at a time to bound
    memory; all scene parameters are drawn first, so they do not depend on ``size``."""
    per, n_classes = PER_CLASS[task][split], len(class_names(task))
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), per)
    scene_rng = np.random.default_rng([SEED, TASKS.index(task), SPLIT_IDS[split]])
    pixel_rng = np.random.default_rng([SEED, TASKS.index(task), SPLIT_IDS[split], size])
    if task == "far":
        scenes = _texture_scenes(scene_rng, labels)
        draws = [_draw_texture] * n_classes
    else:
        scenes = _shape_scenes(scene_rng, len(labels))
        draws = [functools.partial(_draw_shapes, pair) for pair in shape_classes(task)]
    pixels = np.empty((len(labels), 3, size, size), dtype=np.uint8)
    for label in range(n_classes):
        rows = slice(label * per, (label + 1) * per)
        scene = _take(scenes, rows)
        images = draws[label](scene, size)
        noise = _col(scene["bg"]["noise"])[:, None]
        images += pixel_rng.normal(0.0, 1.0, images.shape) * noise
        pixels[rows] = np.clip(np.rint(images * 255.0), 0, 255)
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


@register_dataset(
    "synthetic",
    splits=("train", "val", "test"),
    default_image_size=32,
    takes_argument=True,
    description="procedural images: synthetic:source (20 shape-pair classes), synthetic:near "
    "(10 new pairs of the same shapes), synthetic:far (10 isoluminant texture classes)",
)
def build_synthetic(request: BuildRequest) -> ImageSet:
    """One split of ``synthetic:{source,near,far}`` at ``request.image_size``."""
    task = request.argument.strip().lower()
    if task not in TASKS:
        raise UnknownDatasetError(
            f"unknown synthetic task {request.argument!r}; valid: {', '.join(TASKS)}"
        )
    images, labels = synthetic_arrays(task, request.split, request.image_size)
    return TensorImageSet(torch.from_numpy(images.copy()), labels.copy(), class_names(task))
