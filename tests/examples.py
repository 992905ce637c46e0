"""How many generated inputs each property test tries.

`make test` (the whole suite, as CI runs it) tries the count each test names.
`make check`, the everyday loop, sets ``TRIAGE_TEST_PROFILE=check`` and tries
a quarter of it (at least five): the same properties over the same strategies,
each still starting from hypothesis' explicit and shrunk-toward-simple cases,
just a shorter random walk. A failure found by the full count fails `make test`
before anything lands.
"""

from __future__ import annotations

import os

CHECK_SHARE = 4
CHECK_FLOOR = 5


def examples(full: int) -> int:
    """``full`` under `make test`; a quarter of it under `make check`."""
    if os.environ.get("TRIAGE_TEST_PROFILE") == "check":
        return min(full, max(CHECK_FLOOR, full // CHECK_SHARE))
    return full
