"""slurm/train.sbatch on a real two-node SLURM cluster (tests/slurm/conftest.py): a Ray head on n1, a Ray
worker on n2, `cogrl train` on the head; then a requeue mid-run (what preemption does) resumes the same run
directory from its last checkpoint; and nothing the job started outlives it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TINY = "{arch: qwen2, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 400}"
STEPS = 6
OVERRIDES = [
    f"model.tiny={TINY}",
    "warmup=null",
    "env.options.n_train=24",
    "env.options.n_test=4",
    "rollout.backend=hf",
    "rollout.num_workers=2",  # with the learner: 3 one-CPU actors, more than the head's 2 CPUs
    "rollout.max_new_tokens=12",
    "rollout.samples_per_prompt=2",
    f"trainer.steps={STEPS}",
    "trainer.prompts_per_step=4",
    "trainer.checkpoint_every=2",
    "trainer.eval_every=0",
    "trainer.lr=1e-3",
    "logging.wandb_mode=disabled",
]


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def job_state(cluster, job: str) -> dict[str, str]:
    fields = cluster.run("scontrol", "show", "job", job).split()
    return dict(field.split("=", 1) for field in fields if "=" in field)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name `text` (the job's private Ray folder)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(f"{cmdline.parent.name}: {command[:200]}")
    return found


def test_train_sbatch_on_two_nodes_requeued_mid_run_resumes(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    env = {**cluster.env, "RUN_DIR": str(run), "RAY_TMP_ROOT": str(cluster.root), "HF_HUB_OFFLINE": "1"}
    submit = subprocess.Popen(
        ["sbatch", "--wait", "--parsable", "--nodes=2", "--cpus-per-task=2", "--gpus-per-node=0",
         f"--output={log}", "slurm/train.sbatch", "recipes/cpu-tiny-grpo.yaml", *OVERRIDES],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    job = ""
    try:
        job = submit.stdout.readline().strip().split(";")[0]
        assert job.isdigit(), submit.stderr.read()
        job_tmp = f"{cluster.root}/ray-{job}"  # prefix of every attempt's Ray folder

        # Requeue once a step past the step-2 checkpoint is logged: SLURM stops the job and starts it again.
        deadline = time.monotonic() + 240
        while 3 not in steps_logged(run):
            assert submit.poll() is None, f"job ended before step 3\n{read(log)}"
            assert time.monotonic() < deadline, f"no step 3 after 240 s\n{read(log)}\n{cluster.logs()}"
            time.sleep(0.2)
        cluster.run("scontrol", "requeue", job)
        _release(cluster, job)

        returncode = submit.wait(timeout=300)
        output = read(log)
        assert returncode == 0, f"job {job} failed ({returncode})\n{output}\n{cluster.logs()}"
        state = job_state(cluster, job)
        assert state["JobState"] == "COMPLETED" and state["Restarts"] == "1", state

        # Both attempts ran on a two-node Ray cluster; n2's Ray hosted at least one of the 3 actors.
        assert output.count("ray cluster: 2 nodes, 4 CPUs") == 2, output
        n2_logs = Path(cluster.root).glob(f"ray-{job}-*/n2/session_*/logs/worker-*.out")  # per attempt
        assert any(":actor_name:" in path.read_text(errors="replace") for path in n2_logs), output

        # The run directory is complete and the resumed attempt redid only the steps after the checkpoint.
        assert "resuming" in output and "resumed from" in output, output
        resumed_at = steps_logged_before_resume(output)
        assert 2 <= resumed_at < STEPS, output
        assert steps_logged(run) == list(range(1, STEPS + 1))
        assert (run / "config.yaml").exists()
        assert (run / "checkpoints" / f"step-{STEPS:06d}" / "config.json").exists()
        versions = json.loads((run / "versions.json").read_text())
        assert len(versions["resumes"]) == 1
        rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rollouts] == [s for s in range(1, STEPS + 1) for _ in range(4 * 2)]

        # Teardown: both attempts stopped every Ray process they started.
        assert output.count("teardown: stopped") == 2, output
        leftovers = _wait_gone(job_tmp)
        assert not leftovers, "\n".join(leftovers)
    finally:
        if submit.poll() is None:
            if job:
                subprocess.run(["scancel", job], env=cluster.env, timeout=30)
            submit.kill()
            submit.wait()


def steps_logged_before_resume(output: str) -> int:
    """The checkpoint step the requeued attempt resumed from (rich may wrap the path over lines)."""
    resumed = output.split("resumed from", 1)[1].replace("\n", "")
    return int(resumed.split("step-", 1)[1][:6])


def _release(cluster, job: str) -> None:
    """A requeued job may be held back by a begin time; let it start as soon as resources are free."""
    deadline = time.monotonic() + 60
    while job_state(cluster, job)["JobState"] not in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, job_state(cluster, job)
        time.sleep(0.5)
    if job_state(cluster, job)["JobState"] == "PENDING":
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=cluster.env, timeout=30)


def _wait_gone(text: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (alive := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else f"({path} not written)"
