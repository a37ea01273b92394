"""A private two-node SLURM cluster on this machine: munged, slurmctld and two slurmd ("n1", "n2"), every
state, log, pid and spool path under one scratch folder, every daemon stopped by PID afterwards.

Each node has 2 CPUs, 8000 MB of memory (a consumable resource, so steps show what they asked for) and 2
stand-in GPUs: GRES backed by plain files, which slurmd counts (logging that they are not devices), so a job
can ask for GPUs and the launchers' GPU flags are exercised without any GPU or CUDA.

Needs root and Debian's slurm-wlm + munge (scripts/test.sh installs them in CI). Without them the tests skip
locally and fail in CI (CI=true), so the SLURM launchers are never silently untested there."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the private SLURM cluster runs its daemons as root"
    absent = [name for name in DAEMONS if shutil.which(name) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurm-wlm munge)"
    return None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SlurmCluster:
    """The two nodes described above; `env` is what every client (sbatch, squeue, scontrol) needs."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 30) -> str:
        out = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout

    def logs(self) -> str:
        """The daemons' logs, for failure messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.run("sinfo", "--noheader", "--Node", "--format=%N %t").split()
            if states.count("idle") == 2:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"SLURM nodes not idle after {timeout:g} s: {states}\n{self.logs()}")
            time.sleep(0.5)


def _config(root: Path, hostname: str, ports: list[int], first_job: int) -> str:
    ctld_port, n1_port, n2_port = ports
    return f"""\
ClusterName=cogrltest
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/pgid
TaskPlugin=task/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=10
FirstJobId={first_job}
GresTypes=gpu
NodeName=n1 NodeHostname={hostname} NodeAddr=127.0.0.1 Port={n1_port} CPUs=2 RealMemory=8000 Gres=gpu:2
NodeName=n2 NodeHostname={hostname} NodeAddr=127.0.0.1 Port={n2_port} CPUs=2 RealMemory=8000 Gres=gpu:2
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; only the process this fixture started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _kill_leftovers(conf: Path) -> None:
    """SIGKILL whatever still runs under this cluster's SLURM_CONF (e.g. a slurmstepd whose step timed out):
    only processes this fixture's daemons started carry it."""
    marker = f"SLURM_CONF={conf}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                os.kill(int(environ.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if reason := _missing():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"SLURM test cannot run in CI: {reason}")
        pytest.skip(reason)
    # A short path: Ray's unix sockets live under the job's temp dir and are limited to ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="cogrl-slurm-"))
    os.chmod(root, 0o755)
    for sub in ("state", "munge", "spool-n1", "spool-n2"):
        (root / sub).mkdir()
    os.chmod(root / "munge", 0o755)  # munged refuses a socket folder clients cannot enter
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    hostname = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(_config(root, hostname, _free_ports(3), first_job=random.randrange(10_000, 900_000)))
    for index in range(2):
        (root / f"gpu{index}").touch()
    (root / "gres.conf").write_text(f"NodeName=n1,n2 Name=gpu File={root}/gpu[0-1]\n")  # beside slurm.conf
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, env)
    daemon_out = (root / "daemons.log").open("ab")
    commands = {
        "munged": [
            "munged", "--foreground", f"--socket={root}/munge/munge.socket", f"--key-file={key}",
            f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munge.seed",
        ],
        "slurmctld": ["slurmctld", "-D", "-i"],
        "n1": ["slurmd", "-D", "-N", "n1"],
        "n2": ["slurmd", "-D", "-N", "n2"],
    }  # fmt: skip
    try:
        for name, command in commands.items():
            cluster.processes[name] = subprocess.Popen(
                command, env=env, stdout=daemon_out, stderr=subprocess.STDOUT, start_new_session=True
            )
            if name == "munged":
                deadline = time.monotonic() + 10
                while not (root / "munge" / "munge.socket").exists():
                    assert time.monotonic() < deadline, f"munged did not start\n{cluster.logs()}"
                    time.sleep(0.1)
        cluster.wait_idle()
        yield cluster
    finally:
        for name in ("n2", "n1", "slurmctld", "munged"):
            if name in cluster.processes:
                _stop(cluster.processes[name])
        _kill_leftovers(conf)
        daemon_out.close()
        shutil.rmtree(root, ignore_errors=True)
