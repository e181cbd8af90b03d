"""Who holds a job: a claim's owner token, and whether that owner is a dead process on this machine.

A token reads `<machine>/<pid>/<start>/<host>/<random>`. `<machine>` is a digest of the kernel's boot id,
this process's pid namespace and its user: two processes share it only when each can see the other. A
claim may then take over at once a job whose owner, on this machine, is no longer running (the same
pid with the same start time in /proc), instead of waiting for its lease to run out: a hotline killed
and started again picks up its own work in seconds. Anywhere else (another machine, another container,
no /proc) the lease alone decides, as before. A wrong verdict would cost work, not data: the owner
it was taken from can no longer commit (jobs/queue.py), so the job is simply done again.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import socket
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")


@lru_cache(maxsize=1)
def machine_key() -> str | None:
    """None where this cannot be known (then no owner is ever judged dead by pid)."""
    try:
        boot_id = (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        pid_namespace = os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None
    if not boot_id:
        return None
    # The user too: where /proc hides other users' processes (hidepid), theirs would look dead.
    return hashlib.sha256(f"{boot_id}\0{pid_namespace}\0{os.getuid()}".encode()).hexdigest()[:16]


def _start_time(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) onwards
    return fields[0], fields[19]  # state; starttime is field 22


def new_owner() -> str:
    key = machine_key() or "elsewhere"
    pid = os.getpid()
    started = _start_time(pid) if key != "elsewhere" else None
    host = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-.")[:32]
    return f"{key}/{pid}/{started[1] if started else 0}/{host}/{secrets.token_hex(8)}"


def local_prefix() -> str | None:
    key = machine_key()
    return f"{key}/" if key else None


def is_dead_here(owner: str) -> bool:
    """True only when `owner` is a process of this machine and pid namespace that no longer runs."""
    key = machine_key()
    parts = owner.split("/")
    if key is None or len(parts) != 5 or parts[0] != key or not parts[1].isdigit():
        return False
    pid, started = int(parts[1]), parts[2]
    if pid == os.getpid():
        return False
    try:
        found = _start_time(pid)
    except (OSError, ValueError, IndexError):
        return False  # cannot tell: leave it to the lease
    return found is None or found[0] in ("Z", "X") or found[1] != started
