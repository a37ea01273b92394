"""Countdown for cogrl: an exact solver, a safe scorer, the paper's prompts, and a seeded generator.

Other modules use ``solver.solutions / is_solvable / count_solutions``, ``prompts.base_prompt / completion``
and ``scorer.score`` directly; the RL loop uses ``env.CountdownEnv`` through the ``cogrl.envs`` registry.
"""
