"""`cogrl pretrain`: pretrain a model on a corpus its environment generates (the miniature's base models), or
continue pretraining one on a text dataset (`dataset: runs/corpus/rich`, docs/corpus.md).

cogrl pretrain recipes/pretrain/countdown-mini-base.yaml --out runs/base
cogrl pretrain recipes/pretrain/countdown-mini-base.yaml corpus.search_fraction=0.05 --out runs/base-qwen-like
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.files import check_output_dir

console = Console(stderr=True)


def pretrain(
    recipe: Annotated[Path, typer.Argument(help="Pretraining recipe YAML (see recipes/pretrain/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
    out: Annotated[Path, typer.Option(help="Model directory to write.")] = Path("runs/base"),
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Train the recipe's model with a causal-LM loss on the generated corpus (or on `dataset`, a text
    dataset such as a `cogrl corpus build` arm); a killed run started again with the same command resumes
    from `<out>.work/`."""
    from cogrl.config import PretrainRecipe, load_recipe
    from cogrl.pretraining import pretrain as run_pretrain

    loaded = load_recipe(recipe, overrides or [], kind=PretrainRecipe)
    check_output_dir(out, inputs=[recipe], overwrite=overwrite)
    run_pretrain(loaded, out, log=console.print)
    console.print(f"done: {out} (use it as model.path in a train or sweep recipe)")
