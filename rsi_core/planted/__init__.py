"""Planted networks: residual networks with hand-set weights whose answers are known by construction."""
from rsi_core.planted import resnet  # noqa: F401  (registers the planted: weights source)
