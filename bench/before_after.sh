#!/usr/bin/env bash
# The hot paths (regex tagger, Countdown scorer, one GRPO step vs TRL) at an earlier commit and at the
# working tree, alternated round by round in one session, so a refactor's cost is read side by side:
#
#   bench/before_after.sh REV [ROUNDS]        e.g. bench/before_after.sh 0c56031 2
#
# REV is checked out into a temporary git worktree and run with its own src/ first on PYTHONPATH (same venv).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/before_after.sh REV [ROUNDS]}
rounds=${2:-2}
old=$(mktemp -d /tmp/cogrl-before-XXXXXX)
trap 'git worktree remove --force "$old"' EXIT
git worktree add -q --detach "$old" "$rev"
py=$PWD/.venv/bin/python
for round in $(seq "$rounds"); do
  for side in before after; do
    root=$([[ $side == before ]] && echo "$old" || echo "$PWD")
    echo "=== round $round, $side ($([[ $side == before ]] && echo "$rev" || echo "working tree"))"
    run() { (cd "$root" && PYTHONPATH=$root/src:$root/envs/countdown OMP_NUM_THREADS=1 "$py" "$@" 2>&1); }
    run bench/behaviors.py regex --rounds 3 | grep -E "^  (tagger|regex|v1-before|keywords)" || echo "  (regex bench failed here)"
    run bench/countdown.py --quick | grep -E "scorer|ratio" || echo "  (countdown bench failed here)"
    run bench/rl.py step-vs-trl --steps 3 | grep -E "^\| (cogrl|trl) |samples per second" || echo "  (step-vs-trl failed here)"
  done
done
