"""The watchdog that kills a dead driver's local cluster: a process tree stands in for Ray's (no Ray here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
from processes import kill_all, running, wait_until_gone

# A driver that starts a "cluster" (a process with a child of its own, in their own session like Ray's
# workers, so nothing but the watchdog ends them) and an unrelated helper, hands the cluster to the
# watchdog, reports the pids and waits to be killed.
DRIVER = """
import json, subprocess, sys, time
import psutil
from cogrl.rl import watchdog
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
spawner = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)"
cluster = subprocess.Popen([sys.executable, "-c", spawner, *sleeper], start_new_session=True)
helper = subprocess.Popen(sleeper, start_new_session=True)
while not psutil.Process(cluster.pid).children():  # the whole tree exists before the watchdog looks
    time.sleep(0.05)
dog = watchdog.start([cluster.pid])
print(json.dumps({"cluster": cluster.pid, "helper": helper.pid, "watchdog": dog.pid}), flush=True)
time.sleep(600)
"""


def test_a_killed_driver_takes_its_cluster_and_only_it_with_it():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    pids = json.loads(driver.stdout.readline())
    cluster = psutil.Process(pids["cluster"])
    tree = [cluster, *cluster.children(recursive=True)]
    helper, dog = psutil.Process(pids["helper"]), psutil.Process(pids["watchdog"])
    try:
        assert len(tree) == 2 and all(running(p) for p in tree)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        assert wait_until_gone([*tree, dog], limit_s=60) == []  # gone in well under a second
        assert running(helper)  # not part of the cluster: left alone
    finally:
        kill_all([*tree, helper, dog])
