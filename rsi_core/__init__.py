"""rsi: the findings of "Interpreting the Residual Stream of ResNet18" as re-runnable claims.

The few names a researcher scripts with, imported on first use (PEP 562), so ``import
rsi_core.paper`` or ``rsi --help`` imports no torch; the layers below (``paper``, ``model``,
``fz``, ``measure``, ``verdicts``, ``planted``, ``report``, ``harness``) hold the rest.
"""
import importlib

_PUBLIC = {"Cache": "rsi_core.cache", "FZBank": "rsi_core.fz.bank", "FZSettings": "rsi_core.fz.render",
           "ImageSet": "rsi_core.model.images", "Study": "rsi_core.measure.study",
           "get_profile": "rsi_core.measure.profiles", "load_model": "rsi_core.model.load",
           "natural_activations": "rsi_core.model.activations"}
__all__ = sorted(_PUBLIC)

#: the packages that register weights sources, by prefix: the registry (``rsi_core.model.sources``)
#: imports one the first time its prefix is asked for (the package root names them, as no layer
#: may import one above it)
WEIGHTS_SOURCES = {"planted": "rsi_core.planted"}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rsi_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
