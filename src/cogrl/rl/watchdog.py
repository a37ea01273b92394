"""A watchdog that takes a driver's local Ray cluster down with it, however the driver dies.

Ray ties its head processes (GCS, raylet, monitors) to the driver that started them, but the raylet's own
children outlive it: after a SIGKILL of the driver, Ray 2.60's dashboard agent and runtime-env agent notice
the raylet is gone, then block for a minute reporting it to the dead GCS. The watchdog is a separate process in its own session (a kill of the driver's process group
spares it): it follows the cluster's process tree while the driver lives and kills what is left of it the
moment the driver is gone. Started by `cogrl.rl.driver.init_ray` only for a cluster the driver started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable

import psutil

POLL_S = 1.0
"""How often the watchdog refreshes its view of the cluster's processes while the driver lives (one pass
over the process table each time)."""

_started: list[subprocess.Popen] = []  # keeps the handle (and so no ResourceWarning) for the driver's life


def start(roots: Iterable[int]) -> subprocess.Popen:
    """Watch this process; once it is gone, kill `roots` and all their descendants."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cogrl.rl.watchdog", str(os.getpid()), *map(str, roots)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _started.append(process)
    return process


def watch(driver_pid: int, root_pids: Iterable[int]) -> None:
    """Until the driver exits, remember every live process of the trees under `root_pids`; then kill them.

    psutil identifies a process by pid and start time, so a pid reused after a process ended is never
    killed."""
    known: dict[int, psutil.Process] = {}
    roots = []
    for pid in root_pids:
        try:
            roots.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        driver = None
    while True:
        live_roots = {root.pid for root in roots if root.is_running()}  # never a reused pid
        known.update((p.pid, p) for p in _trees(live_roots))
        if driver is None or _exited(driver):
            break
    for process in known.values():
        try:
            process.kill()
        except psutil.Error:
            continue


def _trees(roots: set[int]) -> list[psutil.Process]:
    """The live processes under `roots` (roots included), from one pass over the process table."""
    processes, children = {}, defaultdict(list)
    for process in psutil.process_iter(["ppid"]):
        processes[process.pid] = process
        children[process.info["ppid"]].append(process.pid)
    found, stack = [], [pid for pid in roots if pid in processes]
    while stack:
        pid = stack.pop()
        found.append(processes[pid])
        stack.extend(children[pid])
    return found


def _exited(process: psutil.Process) -> bool:
    """Wait up to POLL_S for `process` to end; a zombie (dead, not yet reaped by its parent) has ended."""
    try:
        process.wait(timeout=POLL_S)
        return True
    except psutil.TimeoutExpired:
        pass
    except psutil.NoSuchProcess:
        return True
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


if __name__ == "__main__":
    watch(int(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])
