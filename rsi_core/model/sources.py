"""Where a model's weights come from: one registry of weights sources, torchvision style.

A weights string is ``PREFIX:SPEC`` for a registered source (``random:0``,
``shuffle:1:IMAGENET1K_V1``, ``planted:fig2-holds``), else a file path or a torchvision weights
name (``IMAGENET1K_V1``; ``rsi_core.model.load``). Sources register themselves with
``register_source``; the package that defines one imports it (``rsi_core.model`` for random and
shuffle); a source of a package above this layer (planted) is named in the package root's
``WEIGHTS_SOURCES`` and imported the first time its prefix is asked for, so importing rsi never
imports it and a lookup never imports upward by name. This is the one place that reads a weights
string's prefix.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("control", "planted")


@dataclass(frozen=True)
class Source:
    prefix: str
    build: Callable      # build(model name, full weights string, device, **options) -> model
    kind: str            # "control": random-init or shuffled (observed, never expected); "planted": known by construction
    example: str


SOURCES: dict[str, Source] = {}


def register_source(prefix: str, *, kind: str, example: str):
    """Decorator: ``build(name, weights, device, **options)`` serves weights ``prefix:...``."""
    if kind not in KINDS:
        raise ValueError(f"source kind {kind!r}: one of {KINDS}")

    def add(build):
        SOURCES[prefix] = Source(prefix, build, kind, example)
        return build
    return add


def _registered(prefix: str | None = None) -> dict[str, Source]:
    """The sources, after importing the package that registers ``prefix`` (None: every package)."""
    import importlib

    import rsi_core
    for name, module in rsi_core.WEIGHTS_SOURCES.items():
        if name not in SOURCES and prefix in (None, name):
            importlib.import_module(module)
    return SOURCES


def source_of(weights) -> Source | None:
    """The registered source of ``weights``, or None for a file path or a torchvision name. A
    ``word:...`` string whose word is no source is an error that lists the sources."""
    prefix, sep, _ = str(weights).partition(":")
    if not sep:
        return None
    if prefix in _registered(prefix):
        return SOURCES[prefix]
    if prefix.isalpha() and len(prefix) > 1:  # not a Windows drive letter
        known = ", ".join(s.example for s in _registered().values())
        raise ValueError(f"unknown weights source {prefix!r} in {weights!r}: use one of {known}, "
                         "a torchvision weights name (IMAGENET1K_V1) or a path to a .pth file")
    return None


def kind_of(weights) -> str | None:
    """"control", "planted", or None (trained weights from a file or torchvision)."""
    source = source_of(weights)
    return source.kind if source else None


def is_control(weights) -> bool:
    """Random-init and weight-shuffled weights are controls: their claims are observed, never expected."""
    return kind_of(weights) == "control"


def random_seed(weights) -> int | None:
    """SEED of ``random:SEED`` weights, else None."""
    prefix, _, seed = str(weights).partition(":")
    return int(seed) if prefix == "random" and seed.lstrip("-").isdigit() else None
