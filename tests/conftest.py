"""Suite-wide test settings.

Hypothesis: no per-example deadline (the machine has 2 cores shared with other work, so wall-clock
limits would make property tests flaky), and in CI (``CI=true``) a fixed derivation of examples from
each test's name (``derandomize``), so a CI run is reproducible; locally examples stay random.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("perphedge", deadline=None)
settings.register_profile("perphedge-ci", deadline=None, derandomize=True)
settings.load_profile("perphedge-ci" if os.environ.get("CI", "").lower() == "true" else "perphedge")
