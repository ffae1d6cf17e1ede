"""This process's identity as stored with its runs, and whether a recorded process still lives.

``proc_key()`` is ``<boot id>/<pid namespace>/<pid>/<start ticks>``: two processes in the same
kernel and pid namespace can check each other's pids, and the start time tells a reused pid apart.
"""

from __future__ import annotations

import os
import socket
import uuid
from functools import lru_cache

__all__ = ["new_owner", "proc_key", "process_alive"]


def new_owner() -> str:
    """A fresh lease token (32 hex characters)."""
    return uuid.uuid4().hex


@lru_cache(maxsize=1)
def _namespace() -> str:
    """``boot id/pid namespace``: two processes with equal namespaces see each other's pids."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return f"host:{socket.gethostname()}"  # no /proc: pids are compared by host name only


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' without /proc): tells a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def proc_key(pid: int | None = None) -> str:
    """This process's identity as stored with its runs: ``namespace/pid/start ticks``."""
    pid = os.getpid() if pid is None else pid
    return f"{_namespace()}/{pid}/{_start_ticks(pid)}"


def process_alive(key: str | None) -> bool | None:
    """Whether the process identified by ``key`` (see :func:`proc_key`) still runs.

    ``None`` when this process cannot tell (another host, kernel or pid namespace, or no key).
    """
    if not key:
        return None
    parts = key.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != _namespace():
        return None
    pid_text, ticks = parts[1], parts[2]
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return None
    return not ticks or _start_ticks(pid) == ticks
