"""The rsi pytest harness (options --model, --weights, --profile, ...): see rsi_core/pytest_plugin.py."""
pytest_plugins = ["rsi_core.harness.plugin"]
