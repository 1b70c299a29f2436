"""The unit tests' shared settings."""

from __future__ import annotations

from hypothesis import settings

# Property tests check what holds, not how fast: a machine shared with other work ran single examples
# past Hypothesis's default 200 ms deadline and failed them (test_micro_cuts, twice, under a load of 17).
# Here, not in tests/conftest.py: the contract image's package set has no Hypothesis and needs none.
settings.register_profile("longscribe", deadline=None)
settings.load_profile("longscribe")
