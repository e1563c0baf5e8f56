"""rsi: the findings of "Interpreting the Residual Stream of ResNet18" as re-runnable claims.

The few names a researcher scripts with; the layers below (``paper``, ``model``, ``fz``,
``measure``, ``verdicts``, ``planted``, ``report``, ``harness``) hold the rest.
"""
from rsi_core import planted  # noqa: F401  (registers the planted: weights source)
from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.render import FZSettings
from rsi_core.measure.profiles import get_profile
from rsi_core.measure.study import Study
from rsi_core.model.activations import natural_activations
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model

__all__ = ["Cache", "FZBank", "FZSettings", "ImageSet", "Study", "get_profile", "load_model", "natural_activations"]
