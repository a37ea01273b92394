"""DAPO's dynamic sampling: which groups are kept, and how further draws are kept apart (the loop itself runs
in tests/rl/test_train_e2e.py::test_train_with_the_new_algorithms)."""

from __future__ import annotations

import pytest

from cogrl.config import AlgorithmConfig
from cogrl.envs import Score
from cogrl.rl.batch import Experience, Generation
from cogrl.rl.driver import informative_groups, to_experiences


def experience(group: int, reward: float) -> Experience:
    return Experience((1,), (2,), (-0.5,), reward, group)


def test_groups_with_equal_rewards_are_dropped_whole():
    # group 0: [1, 0] kept; group 1: [0, 0] dropped (all failed); group 2: [1, 1] dropped (all solved);
    # group 3: [.5] alone, dropped; group 4: [0, .1] kept, its members in batch order
    batch = [
        experience(g, r) for g, r in [(0, 1.0), (1, 0.0), (0, 0.0), (2, 1.0), (1, 0.0), (2, 1.0), (3, 0.5)]
    ]
    batch += [experience(4, 0.0), experience(4, 0.1)]
    kept = informative_groups(batch, limit=10)
    assert [(e.group, e.reward) for e in kept] == [(0, 1.0), (0, 0.0), (4, 0.0), (4, 0.1)]
    # at most `limit` groups, the first ones to appear
    assert [e.group for e in informative_groups(batch, limit=1)] == [0, 0]
    assert informative_groups(batch, limit=0) == []


def test_further_draws_get_their_own_groups():
    generations = [
        Generation(i // 2, (1,), (2, 3), (-0.1, -0.2), "text", "length" if i == 3 else "stop")
        for i in range(4)
    ]
    scores = [Score(float(i), "", False) for i in range(4)]
    experiences = to_experiences(generations, scores, group_offset=8)
    assert [e.group for e in experiences] == [8, 8, 9, 9]
    assert [e.truncated for e in experiences] == [False, False, False, True]
    assert [e.reward for e in experiences] == [0.0, 1.0, 2.0, 3.0]


def test_dynamic_sampling_needs_a_group_advantage():
    assert AlgorithmConfig(dynamic_sampling_rounds=2).dynamic_sampling_rounds == 2
    with pytest.raises(ValueError, match="dynamic_sampling_rounds drops groups: advantage gae uses none"):
        AlgorithmConfig(advantage="gae", dynamic_sampling_rounds=2)
