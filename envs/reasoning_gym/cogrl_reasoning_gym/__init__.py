"""reasoning-gym's procedural task families as one cogrl environment (``reasoning_gym``)."""
