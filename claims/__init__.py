"""The paper's claims as pytest tests. In a clone: ``pytest claims``; installed (the wheel ships this
folder as the ``rsi_claims`` package): ``rsi run`` or ``pytest --pyargs rsi_claims``."""
