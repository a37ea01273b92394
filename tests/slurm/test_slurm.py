"""slurm/train.sbatch on a real two-node SLURM cluster (tests/slurm/conftest.py): a Ray head on n1, a Ray
worker on n2, each in a step that asks for exactly the job's CPUs, memory and GPUs per node, `cogrl train` on
the head; then a requeue mid-run (what preemption does) resumes the same run directory from its last
checkpoint; and nothing the job started outlives it. A cuda recipe on a job without enough GPUs ends before
the driver starts, with the numbers, however long nodes are allowed to take to join."""

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
CPUS, MEM_MB = 2, 3000  # per node: the submit command's values, which every step and Ray node must get


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
        ["sbatch", "--wait", "--parsable", "--nodes=2", f"--cpus-per-task={CPUS}", "--gpus-per-node=0",
         f"--mem={MEM_MB}", f"--output={log}", "slurm/train.sbatch", "recipes/cpu-tiny-grpo.yaml", *OVERRIDES],
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
        # Mid-run, one Ray step per node holds exactly the job's CPUs and memory per node, and no GPU.
        steps = ray_steps(cluster, job)
        assert sorted(steps) == ["n1", "n2"], steps
        for step in steps.values():
            assert step["TRES"] == f"cpu={CPUS},mem={MEM_MB}M,node=1" and "TresPerNode" not in step, step
        cluster.run("scontrol", "requeue", job)
        _release(cluster, job)

        returncode = submit.wait(timeout=300)
        output = read(log)
        assert returncode == 0, f"job {job} failed ({returncode})\n{output}\n{cluster.logs()}"
        state = job_state(cluster, job)
        assert state["JobState"] == "COMPLETED" and state["Restarts"] == "1", state

        # Both attempts ran on a two-node Ray cluster of the job's CPUs and no GPU, each node started by an
        # srun that asked for the job's per-node resources and no GPU; n2's Ray hosted one of the 3 actors.
        assert output.count("ray cluster: 2 nodes, 4 CPUs, 0 GPUs (the recipe needs 0)") == 2, output
        assert srun_lines(output) == [f"--cpus-per-task={CPUS} --mem={MEM_MB}"] * 4, output
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


@pytest.mark.parametrize("gpus_per_node", [0, 1])
def test_train_sbatch_without_the_recipes_gpus_fails_before_the_driver(
    slurm_cluster, tmp_path, gpus_per_node
):
    """A cuda recipe needing 3 GPUs (a learner + 2 rollout workers) on 2 nodes x 0 or 1 GPUs: the job ends
    non-zero once both nodes have joined, naming what it needs and what it has. Nodes may take an hour to
    join (NODE_TIMEOUT_S), so a check that waited for GPUs would outlast the test's timeout."""
    cluster = slurm_cluster
    run, log = tmp_path / "run", tmp_path / "job.out"
    env = {**cluster.env, "RUN_DIR": str(run), "RAY_TMP_ROOT": str(cluster.root), "NODE_TIMEOUT_S": "3600"}
    submit = subprocess.Popen(
        ["sbatch", "--wait", "--parsable", "--nodes=2", f"--cpus-per-task={CPUS}", f"--mem={MEM_MB}",
         f"--gpus-per-node={gpus_per_node}", f"--output={log}", "slurm/train.sbatch",
         "recipes/cpu-tiny-grpo.yaml", *OVERRIDES, "trainer.device=cuda"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    job = ""
    try:
        job = submit.stdout.readline().strip().split(";")[0]
        assert job.isdigit(), submit.stderr.read()
        returncode = submit.wait(timeout=600)  # the check itself takes seconds once both nodes are up
    finally:
        if submit.poll() is None:
            if job:
                subprocess.run(["scancel", job], env=cluster.env, timeout=30)
            submit.kill()
            submit.wait()
    output = read(log)
    assert returncode == 1, f"job {job} ended with {returncode}\n{output}\n{cluster.logs()}"
    assert job_state(cluster, job)["JobState"] == "FAILED"

    # The GPUs flowed from the submit command into each node's srun and Ray: the check saw all of them.
    gpu_flag = f" --gpus-per-node={gpus_per_node}" if gpus_per_node else ""
    assert srun_lines(output) == [f"--cpus-per-task={CPUS} --mem={MEM_MB}{gpu_flag}"] * 2, output
    gpus = 2 * gpus_per_node
    assert f"ray cluster: 2 nodes, 4 CPUs, {gpus} GPUs (the recipe needs 3)" in output, output
    assert (
        "not enough GPUs: the recipe needs 3 (trainer.num_learners=1 + rollout.num_workers=2 on cuda, one GPU "
        f"each) but the job's Ray cluster has {gpus} (2 node(s) x {gpus_per_node})"
    ) in output, output

    # The driver never started; every Ray node was stopped.
    assert not run.exists() and "driver exited" not in output, output
    assert "teardown: stopped" in output, output
    leftovers = _wait_gone(f"{cluster.root}/ray-{job}-")
    assert not leftovers, "\n".join(leftovers)


def srun_lines(output: str) -> list[str]:
    """The resource flags of each `srun` the job logged (`+ srun ...`), in order."""
    flags = ("--cpus-per-task=", "--mem=", "--gpus-per-node=")
    return [
        " ".join(word for word in line.split() if word.startswith(flags))
        for line in output.splitlines()
        if line.startswith("+ srun ")
    ]


def ray_steps(cluster, job: str) -> dict[str, dict[str, str]]:
    """The job's running steps other than the batch script's, by node: `scontrol show step` fields."""
    steps = {}
    for line in cluster.run("scontrol", "--oneliner", "show", "step").splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        if fields.get("StepId", "").startswith(f"{job}.") and not fields["StepId"].endswith(".batch"):
            steps[fields["NodeList"]] = fields
    return steps


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
