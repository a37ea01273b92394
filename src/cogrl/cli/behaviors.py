"""`cogrl behaviors ...`: tag trajectories for the four behaviors and report on them."""

import typer

app = typer.Typer(help="Tag trajectories for the four cognitive behaviors and analyse them.", no_args_is_help=True)
