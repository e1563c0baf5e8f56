"""The claims' short option names (``pytest claims --weights random:0 --profile smoke``); the
plugin itself (``rsi_core.harness.plugin``, a ``pytest11`` entry point) adds only ``--rsi-*``
names to other projects' runs. A claims folder of your own takes the same line."""
from rsi_core.harness.plugin import add_short_options as pytest_addoption  # noqa: F401
