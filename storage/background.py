"""A worker's process runs on the CPU the line leaves, except while it holds what the line may wait on.

The embedded worker (`jobs work`, beside the line's gunicorn) and the Celery workers fetch, seal, store and
transcribe on the same cores as the webhooks. At niceness 10 a worker's thread still got about a tenth of
a core that a webhook wanted, and a caller's webhook waited that much longer (README, Performance: Load).
Under Linux's SCHED_IDLE policy a thread runs only on a core that nothing else wants, and a waking webhook
takes the core from it at once.

But a thread starved of CPU must not hold what a webhook waits for: SQLite's write lock (the writers'
queue, storage/sqlite_writers.py) or a PostgreSQL transaction's row locks. While it holds one
(`hurry`/`relax`, counted per thread), the thread runs under the ordinary policy at the process's
niceness, and goes back to idling when it lets go.

Linux lets a thread back out of SCHED_IDLE only with CAP_SYS_NICE (root) or an RLIMIT_NICE that allows
its niceness (systemd's LimitNICE=, e.g. LimitNICE=+10 for niceness 10). Without either, a thread that
idled could never hurry, so the process does not idle at all and keeps its niceness alone."""
from __future__ import annotations

import os
import threading

_state = {"idle": False}
_depth = threading.local()


def _set_policy(policy: int) -> None:
    os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread (Linux's policy is per thread)


def can_idle_and_come_back() -> bool:
    """Whether a thread of this process may go into SCHED_IDLE and back out (tried in a thread of its own,
    which is thrown away: a thread that went in and could not come back would stay idle)."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    answer = []

    def try_both_ways():
        try:
            _set_policy(os.SCHED_IDLE)
            _set_policy(os.SCHED_OTHER)
            answer.append(True)
        except OSError:
            answer.append(False)

    probe = threading.Thread(target=try_both_ways, name="hotline-idle-probe")
    probe.start()
    probe.join()
    return answer == [True]


def run_in_the_background() -> bool:
    """Put the calling thread, and every thread it starts after this, under SCHED_IDLE, if it can come back
    out of it when it holds a lock. Call before starting the worker's threads. Returns whether it idles."""
    if not can_idle_and_come_back():
        return False
    _state["idle"] = True
    _set_policy(os.SCHED_IDLE)
    return True


def idles() -> bool:
    """Whether this process's threads idle when they hold nothing."""
    return _state["idle"]


def hurry() -> None:
    """The calling thread now holds something the line may wait on: it runs at the ordinary policy."""
    if not _state["idle"]:
        return
    depth = getattr(_depth, "value", 0)
    if depth == 0:
        try:
            _set_policy(os.SCHED_OTHER)
        except OSError:  # allowed when the process began to idle; a hold must not fail for want of it
            pass
    _depth.value = depth + 1


def relax() -> None:
    """The calling thread let go of what it held (once for each hurry); at the last it idles again."""
    if not _state["idle"]:
        return
    depth = getattr(_depth, "value", 0)
    if depth <= 0:
        return  # a let-go with no hold to match (a transaction begun before the process idled)
    _depth.value = depth - 1
    if depth == 1:
        _set_policy(os.SCHED_IDLE)  # always allowed

