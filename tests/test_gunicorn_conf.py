"""gunicorn.conf.py's hooks that are not about metrics or the schema (tests/test_metrics.py and
tests/storage/test_schema_check.py run those under gunicorn)."""
from __future__ import annotations

import runpy
import sys

from tests.support.processes import ROOT


def test_each_worker_hands_the_interpreter_lock_on_within_a_millisecond():
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # Python's default
        conf["post_worker_init"](None)
        assert sys.getswitchinterval() == conf["SWITCH_INTERVAL_SECONDS"] <= 0.001
    finally:
        sys.setswitchinterval(before)
