#!/usr/bin/env bash
# One Ray node of a SLURM job: `ray-node.sh head` on the first node, `ray-node.sh worker` on every other one
# (train.sbatch starts them; see slurm/README.md). Runs `ray start --block` in its own process group and,
# when signalled (job end, scancel, requeue, preemption) or when Ray exits, stops exactly that group: SIGTERM,
# then SIGKILL after 3 s. The grace is short on purpose: a raylet "drains" for up to 30 s on SIGTERM and some
# daemons ignore it, while SLURM SIGKILLs this script KillWait seconds after its own SIGTERM (the Ray group,
# in its own session, would then outlive the job). Ray holds no state worth saving: checkpoints are the
# driver's. Never `ray stop`: it kills every Ray process on the machine, including other jobs'.
#
# Reads from the environment (exported by train.sbatch): VENV, RAY_HEAD_IP, RAY_PORT, RAY_JOB_TMP,
# RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, NODE_CPUS and NODE_GPUS (what the job has on each node, which the srun
# that started this script asked for: Ray advertises exactly that), COGRL_RAY_TOKEN (workers: the job's
# token, written to RAY_AUTH_TOKEN_PATH, never on a command line); and SLURM's SLURMD_NODENAME.
set -uo pipefail
role=$1
node=${SLURMD_NODENAME:-$(hostname -s)}
temp_dir=$RAY_JOB_TMP/$node  # per job and node: several nodes may share a machine (and its /tmp)
mkdir -p "$temp_dir"
if [[ -n ${COGRL_RAY_TOKEN:-} ]]; then
  (umask 077 && printf %s "$COGRL_RAY_TOKEN" > "$RAY_AUTH_TOKEN_PATH")
  unset COGRL_RAY_TOKEN
fi
common=(
  --num-cpus="$NODE_CPUS" --num-gpus="$NODE_GPUS"
  --temp-dir="$temp_dir" --dashboard-agent-listen-port=0 --block
)
if [[ $role == head ]]; then
  # Every fixed port is derived from RAY_PORT, so two jobs on one machine never collide.
  args=(--head --node-ip-address="$RAY_HEAD_IP" --port="$RAY_PORT" --ray-client-server-port=$((RAY_PORT + 1))
    --include-dashboard=false --dashboard-port=$((RAY_PORT + 2)) "${common[@]}")
else
  args=(--address="$RAY_HEAD_IP:$RAY_PORT" "${common[@]}")
fi

# Ray runs in its own session (a background job of a non-interactive shell is not a process-group leader, so
# setsid does not fork: $! is the new process group's id), next to a watchdog that kills the whole group as
# soon as this script is gone: srun SIGKILLs its tasks when the job is cancelled or requeued, so a trap alone
# would let the Ray daemons outlive the job.
setsid bash -c '"$@" & while kill -0 "$0" 2>/dev/null && kill -0 $! 2>/dev/null; do sleep 1; done; kill -KILL 0' \
  "$$" "$VENV/bin/ray" start "${args[@]}" &
group=$!
echo "ray-node: $role on $node (process group $group, logs in $temp_dir)"

stop() {
  trap - TERM INT HUP EXIT
  kill -TERM -- "-$group" 2>/dev/null || return 0
  for _ in $(seq 6); do
    kill -0 -- "-$group" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL -- "-$group" 2>/dev/null
  return 0
}
trap 'stop; exit 0' TERM INT HUP
trap stop EXIT
wait "$group"
