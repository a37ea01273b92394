"""The driver's schedule: per-step task slices and seeds are pure functions of (seed, step)."""

from __future__ import annotations

from cogrl.envs import Task
from cogrl.rl.driver import derive_seed, step_tasks

TASKS = [Task(id=f"t{i}", prompt=str(i)) for i in range(10)]


def ids(tasks):
    return [t.id for t in tasks]


def test_each_epoch_visits_every_task_once():
    epoch_one = [t for step in range(1, 6) for t in step_tasks(TASKS, step, 2, seed=0)]
    assert sorted(ids(epoch_one)) == sorted(ids(TASKS))


def test_slices_cross_epoch_boundaries_and_reshuffle():
    crossing = step_tasks(TASKS, 4, 3, seed=0)  # items 9, 10, 11: the last of epoch 0, two of epoch 1
    epoch0 = [t for s in range(1, 4) for t in step_tasks(TASKS, s, 3, seed=0)]
    assert crossing[0].id not in ids(epoch0)
    epoch1 = [t for s in range(4, 8) for t in step_tasks(TASKS, s, 3, seed=0)][1:11]
    assert sorted(ids(epoch1)) == sorted(ids(TASKS))
    assert ids(epoch1) != ids(epoch0 + crossing[:1])


def test_schedule_is_a_pure_function_of_seed_and_step():
    assert ids(step_tasks(TASKS, 7, 4, seed=3)) == ids(step_tasks(TASKS, 7, 4, seed=3))
    assert ids(step_tasks(TASKS, 1, 10, seed=3)) != ids(step_tasks(TASKS, 1, 10, seed=4))
    assert derive_seed(0, "rollout", 5) == derive_seed(0, "rollout", 5) != derive_seed(0, "rollout", 6)
    assert derive_seed(0, "rollout", 5) == 8536843417090456874  # stable across machines and Python runs
