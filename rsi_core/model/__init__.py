"""Models: weights sources, loading, block anatomy and taps, images, activations."""
from rsi_core.model import load, shuffle  # noqa: F401  (each registers its weights sources)
