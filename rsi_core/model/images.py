"""Natural-image sets: an ImageNet-val-like folder read with the paper's preprocessing.

The set's identity (a hash of its relative paths and sizes) goes into cache keys, and its
description (folder, count, whether it is the bundled sample, the stand-in or the user's) into every result.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from rsi_core.paper import IMAGE_SIZE

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
BUNDLED_NAME = "imagenet-sample"


@dataclass(frozen=True)
class Preprocess:
    """How the weights were trained to see an image: the short side resized to ``resize``
    (``interpolation``), centre-cropped to ``crop``, normalized by ``mean`` and ``std``. FZs use
    the same normalization (``normalize``); ``source`` says where the numbers came from."""
    mean: tuple = MEAN
    std: tuple = STD
    resize: int = 256
    crop: int = IMAGE_SIZE
    interpolation: str = "bilinear"
    source: str = "the paper's: torchvision ImageNet (Resize 256, CenterCrop 224, ImageNet mean and std)"

    @classmethod
    def at_paper_size(cls, mean, std, crop_pct: float, interpolation: str, source: str) -> Preprocess:
        """A checkpoint's normalization and crop ratio at the paper's image size (224)."""
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std),
                   int(round(IMAGE_SIZE / crop_pct)), IMAGE_SIZE, interpolation, source)

    def transform(self):
        mode = transforms.InterpolationMode(self.interpolation)
        return transforms.Compose([transforms.Resize(self.resize, interpolation=mode), transforms.CenterCrop(self.crop),
                                   transforms.ToTensor(), transforms.Normalize(self.mean, self.std)])

    def describe(self) -> dict:
        return asdict(self)


PAPER_PREPROCESS = Preprocess()
PAPER_TRANSFORM = PAPER_PREPROCESS.transform()


def normalize(x: torch.Tensor, preprocess: Preprocess = PAPER_PREPROCESS) -> torch.Tensor:
    """The weights' normalization (ImageNet's by default) of a [N, 3, H, W] batch in [0, 1]."""
    mean = torch.tensor(preprocess.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def bundled_dir() -> Path:
    """The 250-image natural sample shipped inside the package (``rsi_core/model/data``, package
    data), so the default works in any clone or install with nothing beside it."""
    return Path(str(importlib.resources.files("rsi_core.model") / "data" / BUNDLED_NAME))


def resolve_image_dir(arg: str | os.PathLike | None = None) -> Path:
    """``--images`` if given, else ``$RSI_IMAGES``, else the bundled sample."""
    chosen = arg or os.environ.get("RSI_IMAGES")
    path = Path(chosen).expanduser() if chosen else bundled_dir()
    if not path.is_dir():
        hint = ("pass --images DIR (or set RSI_IMAGES) to an ImageNet validation folder"
                if chosen else f"the bundled sample {path} is missing from this install: reinstall rsi, "
                               "or pass --images DIR / set RSI_IMAGES")
        raise FileNotFoundError(f"image folder {path} does not exist: {hint}")
    return path


@dataclass
class ImageSet(torch.utils.data.Dataset):
    """Every image file below ``root`` in sorted order (ImageFolder's order for class folders),
    read with ``preprocess`` (``for_model`` gives a model's own)."""
    root: Path
    files: list
    preprocess: Preprocess = field(default=PAPER_PREPROCESS)

    def with_preprocess(self, preprocess: Preprocess) -> ImageSet:
        return self if preprocess == self.preprocess else replace(self, preprocess=preprocess)

    @classmethod
    def from_dir(cls, root: str | os.PathLike | None = None) -> ImageSet:
        root = resolve_image_dir(root)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(
                f"image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                "point --images / RSI_IMAGES at a folder of natural images such as ImageNet val")
        return cls(root, files)

    @property
    def identity(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f}|{(self.root / f).stat().st_size}\n".encode())
        if self.preprocess != PAPER_PREPROCESS:  # the paper's keeps the keys it always had
            h.update(repr(self.preprocess).encode())
        return h.hexdigest()[:16]

    @property
    def is_bundled(self) -> bool:
        return self.root.resolve() == bundled_dir().resolve()

    @property
    def kind(self) -> str:
        """Which set this is, in words, for every report."""
        if self.is_bundled:
            return "bundled sample: 250 ImageNet sample images shipped with rsi, not the 50,000-image validation set"
        if self.root.name == "imagenet-samples":
            return "stand-in: 1,000 ImageNet sample images, not the 50,000-image validation set"
        return "user-supplied folder"

    def describe(self) -> dict:
        return {"images": str(self.root), "image_count": len(self.files), "image_set_id": self.files_identity,
                "image_set": self.kind, "preprocess": self.preprocess.describe()}

    @property
    def files_identity(self) -> str:
        """The files alone (what ``rsi compare`` and baselines compare across models)."""
        return self.with_preprocess(PAPER_PREPROCESS).identity

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.root / self.files[i]
        try:
            with Image.open(path) as im:
                return self._transform(im.convert("RGB"))
        except OSError as exc:
            raise OSError(f"cannot read image {path}: {exc}; remove or replace the file") from exc

    @property
    def _transform(self):
        return PAPER_TRANSFORM if self.preprocess == PAPER_PREPROCESS else self.preprocess.transform()

    def pil(self, i: int) -> Image.Image:
        """The image as the model sees it, before normalization (for figures)."""
        p, mode = self.preprocess, transforms.InterpolationMode(self.preprocess.interpolation)
        with Image.open(self.root / self.files[i]) as im:
            return transforms.CenterCrop(p.crop)(transforms.Resize(p.resize, interpolation=mode)(im.convert("RGB")))
