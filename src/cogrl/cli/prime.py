"""`cogrl prime ...`: build behavior-seeded priming sets and fine-tune on them."""

import typer

app = typer.Typer(help="Build priming SFT sets and run the SFT step.", no_args_is_help=True)
