"""Process helpers for the tests that kill a driver or a rollout worker and check what follows (importable as
`processes`): tests/rl/test_watchdog.py, the SIGKILL test of tests/rl/test_train_e2e.py, worker restarts."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a dead child whose new parent has not reaped it yet); psutil compares start
    times, so a reused pid is not mistaken for the process."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(processes: Iterable[psutil.Process], limit_s: float) -> list[psutil.Process]:
    """Poll until none of `processes` runs or `limit_s` has passed; return the survivors."""
    processes = list(processes)
    deadline = time.monotonic() + limit_s
    while (alive := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill_all(processes: Iterable[psutil.Process]) -> None:
    """Clean up after a test: SIGKILL whatever of `processes` still runs."""
    for process in processes:
        if running(process):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue


def kill_worker(ray, pool, rank: int, limit_s: float = 60.0) -> None:
    """`ray.kill` a pool's worker and wait until its process is gone: the kill is asynchronous, so a call
    made right after it can still be served on a loaded machine (and the restart the test expects never
    happens)."""
    process = psutil.Process(pool.pids[rank])
    ray.kill(pool.workers[rank])
    assert not wait_until_gone([process], limit_s), f"worker {rank} (pid {process.pid}) outlived ray.kill"
