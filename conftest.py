"""A clone's pytest runs (``pytest``, ``pytest claims``) load the rsi plugin, ``rsi_core/harness/plugin.py``,
even where rsi is not installed; installed, pytest loads it by its ``pytest11`` entry point of the
same name, and this line does nothing more."""
pytest_plugins = ["rsi_core.harness.plugin"]
