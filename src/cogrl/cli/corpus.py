"""`cogrl corpus`: curate the behavior-rich and behavior-minimal continued-pretraining corpora (docs/corpus.md).

cogrl corpus build recipes/corpus/cpu-sample.yaml --out runs/corpus-sample
cogrl corpus build recipes/corpus/finemath-llama.yaml label.endpoint=http://judge:8000 --out /shared/corpus
cogrl corpus plan recipes/corpus/cpu-sample.yaml --out runs/corpus-sample

A killed build started again with the same command resumes: finished shards (manifest.json) are not redone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.files import check_output_dir

console = Console(stderr=True)
app = typer.Typer(help="Curate behavior-rich and behavior-minimal pretraining corpora.", no_args_is_help=True)

Recipe = Annotated[Path, typer.Argument(help="Corpus recipe YAML (see recipes/corpus/).")]
Overrides = Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")]
Out = Annotated[Path, typer.Option(help="Output directory (a rerun with the same recipe resumes in it).")]


@app.command()
def build(recipe: Recipe, overrides: Overrides = None, out: Out = Path("runs/corpus")) -> None:
    """Read, prefilter, label, select, (rewrite,) and write the two arms as Hugging Face datasets."""
    from cogrl.config import CorpusRecipe, load_recipe
    from cogrl.corpus.manifest import MANIFEST
    from cogrl.corpus.pipeline import run_corpus

    loaded = load_recipe(recipe, overrides or [], kind=CorpusRecipe)
    target = check_output_dir(
        out, inputs=[recipe, loaded.source.path], remedy="use another --out", resume_marker=MANIFEST
    )
    run_corpus(loaded, target, log=lambda line: console.print(line, soft_wrap=True, highlight=False))


@app.command()
def plan(recipe: Recipe, overrides: Overrides = None, out: Out = Path("runs/corpus")) -> None:
    """Print the stages, the shards, and what a build would do now (nothing runs)."""
    from cogrl.config import CorpusRecipe, load_recipe
    from cogrl.corpus.pipeline import plan_text

    console.print(plan_text(load_recipe(recipe, overrides or [], kind=CorpusRecipe), out), soft_wrap=True)
