"""A worker's process runs on the CPU the line leaves, except while it holds what the line may wait on.

The embedded worker (`jobs work`, beside the line's gunicorn) and the Celery workers fetch, seal, store and
transcribe on the same cores as the webhooks. At niceness 10 a worker's thread still got about a tenth of
a core that a webhook wanted, and a caller's webhook waited that much longer (README, Performance: Load).
Under Linux's SCHED_IDLE policy a thread runs only on a core that nothing else wants, and a waking webhook
takes the core from it at once.

But a thread starved of CPU must not hold what a webhook waits for: a PostgreSQL transaction's row
locks; SQLite's write lock, or a snapshot that a checkpoint of its write-ahead log waits for while holding
that lock (storage/compaction.py LogEmptier; a worker idling mid-read kept the line's writers waiting up to
its 0.2 s). So from a database transaction's begin to its end (storage/db.py, `hurry`/`relax`, counted for
the process), all of the process's threads run under the ordinary policy at its niceness, and go back to
idling when the last ends: the holder may need the interpreter lock from a thread that would otherwise be
idling (decoding speech).

Linux lets a thread back out of SCHED_IDLE only with CAP_SYS_NICE (root) or an RLIMIT_NICE that allows
its niceness (systemd's LimitNICE=, e.g. LimitNICE=+10 for niceness 10). Without either, a thread that
idled could never hurry, so the process does not idle at all and keeps its niceness alone."""
from __future__ import annotations

import os
import threading

from storage.sqlite_writers import write_in_the_background

_state = {"idle": False, "holds": 0}
_holds_lock = threading.Lock()


def _set_policy(policy: int, thread: int = 0) -> None:
    os.sched_setscheduler(thread, policy, os.sched_param(0))  # 0: the calling thread (Linux's is per thread)


def _set_every_thread(policy: int) -> None:
    for task in os.listdir("/proc/self/task"):
        try:
            _set_policy(policy, int(task))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile


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


def run_in_the_background(idle: bool = True) -> bool:
    """This process is a worker's: on SQLite its writers let the line's go first (storage/sqlite_writers.py);
    and with idle, the calling thread, and every thread it starts after this, go under SCHED_IDLE, if they
    can come back out of it when they hold a lock. Call before starting the worker's threads. Returns
    whether it idles."""
    write_in_the_background()
    if not idle or not can_idle_and_come_back():
        return False
    _state["idle"] = True
    _set_policy(os.SCHED_IDLE)
    return True


def hurry() -> None:
    """A thread of this process now holds something the line may wait on: every thread of it runs at the
    ordinary policy until the last hold is let go. Every thread, not the holder alone: the holder may wait
    for the interpreter lock, held by a thread (decoding speech) that would otherwise idle with it."""
    if not _state["idle"]:
        return
    with _holds_lock:
        _state["holds"] += 1
        if _state["holds"] == 1:
            try:
                _set_every_thread(os.SCHED_OTHER)
            except OSError:  # allowed when the process began to idle; a hold must not fail for want of it
                pass


def relax() -> None:
    """A hold let go of (one for each hurry); at the last, every thread of the process idles again."""
    if not _state["idle"]:
        return
    with _holds_lock:
        if _state["holds"] <= 0:
            return  # a let-go with no hold to match (a transaction begun before the process idled)
        # (A hold never let go, a connection lost without its rollback event, leaves the process hurried:
        # at niceness 10, as it ran before it idled.)
        _state["holds"] -= 1
        if _state["holds"] == 0:
            _set_every_thread(os.SCHED_IDLE)  # always allowed


def _after_fork_in_child() -> None:
    # The child has only the forking thread: the other threads' holds are not in it, nor is their lock.
    global _holds_lock
    _holds_lock = threading.Lock()
    _state["holds"] = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
