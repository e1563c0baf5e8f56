"""Detector patterns of the planted networks (``rsi_core.planted.networks``): zero-sum kernels on the
luminance map that the planted stem computes (4 pixels per map unit), their ideal stimuli, and
the best response any image can give them.

* A centre-surround ``dot`` (disc of radius s, annulus to s*sqrt(2), equal areas) and an oriented
  ``bar`` (centre strip of half-width s, flanks to 2s, half-length 1.5s); a seeded random
  ``texture``. A dot or bar at s lies inside the uniform centre of the same pattern at 2s.
* Kernels are scaled so that the best response any image can give (pixels at 0 or 1 by the sign
  of the kernel seen in pixels) is ``BEST_RESPONSE`` = 4 per unit of gain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

UNIT = 4                 # pixels per unit of the 57x57 map that the detectors read
KERNEL = 17              # block detector kernel size on that map (radius 8 units = 32 pixels)
INPUT_KERNEL = 9         # input (I) detectors: patterns at scale s, half the extent of 2s
LUM_GAIN = 4.0           # L = LUM_GAIN * (mean RGB - 1/2): in [-2, 2]
FAMILIES = ("dot", "bar", "texture")
BAR_LENGTH = 1.5         # bar half-length in units of its scale
TEXTURE_BUMPS = 6        # a texture: 3 bright and 3 dark Gaussian bumps (seeded) in a disc
BEST_RESPONSE = 4.0      # every detector's largest response over images, per unit of gain


@dataclass(frozen=True)
class Pattern:
    """A zero-sum detector on the luminance map. ``scale`` is in map units (4 px): the disc
    radius of a dot, the centre half-width of a bar, the bump spacing of a texture (a seeded
    random blob pattern in a disc of radius scale * sqrt(2)). ``angle`` (degrees) turns a bar
    or a texture; ``polarity`` -1 is the OFF version (dark centre)."""
    family: str = "dot"
    scale: float = 2.0
    polarity: int = 1
    angle: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown pattern family {self.family!r}: one of {', '.join(FAMILIES)}")
        if self.polarity not in (1, -1):
            raise ValueError("polarity is +1 or -1")
        if self.extent() > KERNEL // 2:
            raise ValueError(f"{self} does not fit a {KERNEL}x{KERNEL} kernel (extent {self.extent():.2f})")

    def at(self, factor: float) -> Pattern:
        return replace(self, scale=self.scale * factor)

    def flipped(self) -> Pattern:
        return replace(self, polarity=-self.polarity)

    def turned(self, degrees: float) -> Pattern:
        return replace(self, angle=(self.angle + degrees) % (180 if self.family == "bar" else 360))

    def extent(self) -> float:
        """Radius (map units) of the detector's support."""
        if self.family in ("dot", "texture"):
            return self.scale * math.sqrt(2)
        return self.scale * math.hypot(2, BAR_LENGTH)

    def regions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boolean (centre, surround) masks at coordinates x, y (map units from the centre)."""
        s = self.scale
        if self.family == "dot":
            r2 = x * x + y * y
            return r2 < s * s, (r2 >= s * s) & (r2 < 2 * s * s)
        t = math.radians(self.angle)
        u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
        if self.family == "texture":
            rng = np.random.default_rng(self.seed)
            phi = rng.uniform(0, 2 * math.pi, TEXTURE_BUMPS)
            rad = np.sqrt(rng.uniform(0, 1, TEXTURE_BUMPS))
            amp = rng.permutation([1.0, -1.0] * (TEXTURE_BUMPS // 2))
            f = sum(a * np.exp(-((u / s - r * math.cos(p)) ** 2 + (v / s - r * math.sin(p)) ** 2) / (2 * 0.4 ** 2))
                    for a, r, p in zip(amp, rad, phi))
            inside = u * u + v * v < 2 * s * s
            return (f > 0.1) & inside, (f < -0.1) & inside
        along = np.abs(v) < BAR_LENGTH * s
        return (np.abs(u) < s) & along, (np.abs(u) >= s) & (np.abs(u) < 2 * s) & along

    def kernel(self, size: int = KERNEL, oversample: int = 8) -> np.ndarray:
        """[size, size] weights on the luminance map: +1/area on the centre, -1/area on the
        surround (area-weighted coverage of each cell), times the polarity, then scaled so that
        the best response any image can give is ``BEST_RESPONSE`` (see ``best_response``).
        Zero sum."""
        if self.extent() > size // 2:
            raise ValueError(f"{self.short()} does not fit a {size}x{size} kernel (extent {self.extent():.2f})")
        k = self._raw_kernel(size, oversample)
        return k * (BEST_RESPONSE / best_response(k))

    def _raw_kernel(self, size: int, oversample: int) -> np.ndarray:
        r = size // 2
        sub = (np.arange(oversample) + 0.5) / oversample - 0.5
        grid = np.arange(-r, r + 1)
        fine = (grid[:, None] + sub[None, :]).ravel()  # [size * oversample]
        yy, xx = np.meshgrid(fine, fine, indexing="ij")
        centre, surround = self.regions(xx, yy)
        pool = lambda m: m.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
        c, s = pool(centre.astype(np.float64)), pool(surround.astype(np.float64))
        return self.polarity * (c / c.sum() - s / s.sum())

    def image(self, size: int = 224, background: float = 0.5, contrast: float = 0.5) -> np.ndarray:
        """An ideal stimulus in pixels ([size, size] grey levels in [0, 1]): the detector's
        preferred pattern (bright centre, dark surround for polarity +1) centred where the
        planted network's centre neurons look (the image centre), grey elsewhere."""
        coords = (np.arange(size) - (size - 1) / 2) / UNIT
        yy, xx = np.meshgrid(coords, coords, indexing="ij")
        centre, surround = self.regions(xx, yy)
        img = np.full((size, size), background) + self.polarity * contrast * (centre.astype(float) - surround)
        return np.clip(img, 0, 1)

    def short(self) -> str:
        pol = "on" if self.polarity > 0 else "off"
        ang = f"@{self.angle:g}" if self.family != "dot" else ""
        seed = f"#{self.seed}" if self.family == "texture" else ""
        return f"{pol}-{self.family}{seed}{ang}:{self.scale:.2f}"


def pixel_kernel(k: np.ndarray) -> np.ndarray:
    """The luminance-map kernel ``k`` seen in pixels (the stem's 4x4 box average, transposed):
    response = sum(pixel_kernel * (grey - 1/2)) for a grey image."""
    return LUM_GAIN * np.kron(np.asarray(k, dtype=np.float64), np.ones((UNIT, UNIT)) / UNIT ** 2)


def best_response(k: np.ndarray) -> float:
    """Largest response of map kernel ``k`` over images with pixels in [0, 1]: every pixel at
    0 or 1 by the sign of the pixel kernel (what a converged FZ approaches)."""
    return 0.5 * float(np.abs(pixel_kernel(k)).sum())

