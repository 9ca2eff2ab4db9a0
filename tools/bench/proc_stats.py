"""RSS and CPU time of the bench stack's processes, read from /proc.

A service may run worker processes under the one the bench started (several edge or router
workers per machine), so every figure is summed over the process and its descendants.
"""

import os
import re
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses; the fields proper start after the last ')'.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now."""
    children, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def rss_kib(pids: dict[str, int]) -> dict[str, int]:
    """name -> resident set (KiB) of that process and its workers."""
    return {name: sum(_rss_kib(p) for p in tree(pid)) for name, pid in pids.items()}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """name -> user + system CPU seconds so far of that process and its live workers."""
    return {name: sum(_cpu_s(p) for p in tree(pid)) for name, pid in pids.items()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def service_of(name: str) -> str:
    """The service a bench process name belongs to: "edge-2" (a second worker) -> "edge"."""
    return re.sub(r"-\d+$", "", name)


def by_service(values: dict[str, float]) -> dict[str, float]:
    """Per-process figures summed per service: every worker of it counts."""
    out: dict[str, float] = {}
    for name, value in values.items():
        out[service_of(name)] = round(out.get(service_of(name), 0.0) + value, 3)
    return out
