"""On-policy RL for reasoning: rollout workers, learner, weight sync, the driver loop and run directories."""
