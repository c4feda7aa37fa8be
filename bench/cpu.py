"""CPU time of groups of local processes, read from ``/proc`` (Linux), for the benches.

A bench names each group by a predicate over (pid, parent pid, command line); a snapshot sums
the user and system time of the processes that match now. Processes that exit between two
snapshots take their time with them, so groups should be long-lived processes (services,
database backends of a connection pool, the broker).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

Match = Callable[[int, int, str], bool]

_PROC = Path("/proc")


def available() -> bool:
    return (_PROC / "self" / "stat").exists()


def _processes() -> list[tuple[int, int, str, float]]:
    """(pid, parent pid, command line, CPU seconds) of every process we can read."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        found.append((int(entry.name), ppid, cmdline, (utime + stime) / ticks))
    return found


def snapshot(groups: Mapping[str, Match]) -> dict[str, float]:
    """CPU seconds used so far by the processes of each group."""
    totals = dict.fromkeys(groups, 0.0)
    for pid, ppid, cmdline, seconds in _processes():
        for name, match in groups.items():
            if match(pid, ppid, cmdline):
                totals[name] += seconds
    return totals


def children_of(parent: Callable[[], int | None]) -> Match:
    """A process and its direct children (a PostgreSQL postmaster and its backends)."""

    def match(pid: int, ppid: int, cmdline: str) -> bool:
        root = parent()
        return root is not None and (pid == root or ppid == root)

    return match


def find_pid(needle: str) -> int | None:
    """The lowest pid whose command line contains ``needle``."""
    pids = [pid for pid, _, cmdline, _ in _processes() if needle in cmdline]
    return min(pids) if pids else None
