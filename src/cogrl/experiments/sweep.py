"""The paper's central experiment as one resumable command: prime, fine-tune, then RL, per condition.

    <out>/sweep.yaml                  the resolved sweep recipe (a re-run must match it)
    <out>/sweep.json                  status of every (condition, seed): done / failed (with the error)
    <out>/summary.json                accuracy at step 0 and at the end per (condition, seed), means and sds,
                                      the gates and the verdict (cogrl.experiments.verdict)
    <out>/sweep.log                   everything the libraries print (`cogrl sweep`; the terminal shows progress)
    <out>/base/                       the base stage's wandb files (the base model itself is content-addressed
                                      under ~/.cache/cogrl/models/base-<hash>, shared by every sweep that
                                      asks for the same one)
    <out>/<condition>/prime/          the priming set (cogrl.priming.dataset; written atomically)
    <out>/<condition>/sft/            the primed model (cogrl.priming.sft; written atomically)
    <out>/<condition>/rl/             the RL run directory (cogrl.rl.runs.RunDir)

With several seeds each condition holds one `seed-<k>/` folder per seed. The condition `none` has only `rl/`
(RL from the base model). With corpus arms (`base.datasets`, the paper's continued-pretraining comparison)
each arm has its own base, continued-pretrained on the arm's dataset, and a condition `<priming>@<arm>`
(`none@rich`) starts from its arm's base. Re-running the same command skips every stage whose output exists and resumes an
unfinished RL run from its last checkpoint. A failing condition is recorded and the next one runs.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogrl.config import (
    NO_PRIMING,
    LoggingConfig,
    PretrainRecipe,
    SweepRecipe,
    TrainRecipe,
    apply_override,
    deep_merge,
    dump_recipe,
    read_recipe_yaml,
    validate_recipe,
)
from cogrl.experiments import verdict
from cogrl.files import InputError, write_atomic
from cogrl.rl.memory import plan_memory

Log = Callable[[str], None]
MANIFEST = "sweep.json"
RECIPE_FILE = "sweep.yaml"


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> SweepRecipe:
    """Read a sweep recipe. `train: other.yaml` (relative to the sweep file) is read and inlined first, so
    overrides reach into it (`train.trainer.steps=5`); an inline `train` mapping may `extends: other.yaml`
    and state only what differs."""
    path = Path(path)
    raw = read_recipe_yaml(path)
    raw.setdefault("name", path.stem)
    train = raw.get("train")
    if isinstance(train, str):
        train = {"extends": train}
    if isinstance(train, dict) and isinstance(train.get("extends"), str):
        train_path = (path.parent / train.pop("extends")).resolve()
        raw["train"] = deep_merge(read_recipe_yaml(train_path), train)
        raw["train"].setdefault("name", train_path.stem)
    for override in overrides:
        apply_override(raw, override)
    return validate_recipe(raw, SweepRecipe, source=str(path))


# --------------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepRun:
    """One (condition, seed) of a sweep and where its stages write."""

    condition: str
    seed: int
    root: Path
    sweep: Path
    """The sweep directory the run belongs to."""

    @property
    def priming(self) -> str:
        """The priming condition (`condition` without its `@<arm>`)."""
        return self.condition.partition("@")[0]

    @property
    def arm(self) -> str | None:
        """The corpus arm whose base the run starts from (`base.datasets`), or None."""
        return self.condition.partition("@")[2] or None

    @property
    def stages(self) -> tuple[str, ...]:
        return ("rl",) if self.priming == NO_PRIMING else ("prime", "sft", "rl")

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage


def sweep_runs(recipe: SweepRecipe, out: Path) -> list[SweepRun]:
    """Every (condition, seed) in recipe order, conditions outermost."""
    several = len(recipe.seeds) > 1
    return [
        SweepRun(condition, seed, out / condition / (f"seed-{seed}" if several else ""), out)
        for condition in recipe.conditions
        for seed in recipe.seeds
    ]


def rl_progress(rl_dir: Path) -> int | None:
    """The step of the RL run's last checkpoint; None when the run has not started."""
    from cogrl.rl.runs import checkpoints_of

    if not (rl_dir / "config.yaml").exists():
        return None
    return max((step for step, _ in checkpoints_of(rl_dir)), default=0)


def stage_status(recipe: SweepRecipe, run: SweepRun, stage: str) -> str:
    """`done`, `pending`, or for a started RL run `at step k/n` (it resumes from there)."""
    if stage != "rl":
        return "done" if run.stage_dir(stage).exists() else "pending"
    step = rl_progress(run.stage_dir("rl"))
    if step is None:
        return "pending"
    return "done" if step >= recipe.train.trainer.steps else f"at step {step}/{recipe.train.trainer.steps}"


def base_arms(recipe: SweepRecipe) -> list[str | None]:
    """The corpus arms with a base of their own (`base.datasets`), or [None] for the one base (or none)."""
    return list(recipe.base.datasets) if recipe.base is not None and recipe.base.datasets else [None]


def base_plan(recipe: SweepRecipe) -> list[str]:
    """The base stage's lines of the plan: what is pretrained, and whether it is already built."""
    from cogrl.pretraining import METADATA_FILE, cached_base_dir

    lines = []
    for arm in base_arms(recipe):
        pretraining = base_recipe(recipe, arm)
        if pretraining is None:
            return []
        target = cached_base_dir(pretraining)
        status = "built" if (target / METADATA_FILE).is_file() else "pending"
        p = pretraining.pretrain
        what = json.dumps(pretraining.corpus) if arm is None else f"{arm}: {pretraining.dataset}"
        lines.append(
            f"base     {what}, {p.epochs:g} epochs of {p.seq_len}-token blocks, batch "
            f"{p.batch_size}, lr {p.lr:g} -> {target} ({status})"
        )
    return lines


def plan_text(recipe: SweepRecipe, out: Path) -> str:
    """The conditions x stages table, with what a run of the command would do (no model is loaded)."""
    train = recipe.train
    lines = [
        f"sweep {recipe.name}: {len(recipe.conditions)} condition(s) x {len(recipe.seeds)} seed(s) -> {out}",
        f"priming  {recipe.sft.n} synthetic rows per condition (+{recipe.priming_validation} validation) from "
        f"{(recipe.priming_env or train.env).name} {json.dumps((recipe.priming_env or train.env).options)}",
        *base_plan(recipe),
        f"sft      {recipe.sft.epochs:g} epochs, batch {recipe.sft.batch_size}, lr {recipe.sft.lr:g} "
        f"({recipe.sft.lr_schedule}), max length {recipe.sft.max_length}",
        f"rl       {train.name}: {train.algorithm.advantage}, {train.trainer.steps} steps x "
        f"{train.trainer.prompts_per_step} prompts x {train.rollout.samples_per_prompt} samples, "
        f"lr {train.trainer.lr:g}, {train.rollout.backend} rollouts",
        "",
        f"{'condition':<28} {'seed':>4}  {'prime':<9} {'sft':<9} {'rl':<16} directory",
    ]
    for run in sweep_runs(recipe, out):
        status = {s: stage_status(recipe, run, s) if s in run.stages else "-" for s in ("prime", "sft", "rl")}
        lines.append(
            f"{run.condition:<28} {run.seed:>4}  {status['prime']:<9} {status['sft']:<9} {status['rl']:<16} "
            f"{run.root}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------------
def base_recipe(recipe: SweepRecipe, arm: str | None = None) -> PretrainRecipe | None:
    """The pretraining recipe of the sweep's `base` stage (None when the sweep has none): on the generated
    corpus, or for a corpus arm, continued pretraining on that arm's dataset."""
    if recipe.base is None:
        return None
    return PretrainRecipe(
        name=f"{recipe.name}-base" + (f"-{arm}" if arm else ""),
        seed=recipe.base.seed,
        env=recipe.train.env,
        model=recipe.train.model,
        corpus=recipe.base.corpus,
        dataset=recipe.base.datasets[arm] if arm else None,
        pretrain=recipe.base.pretrain,
        logging=recipe.train.logging,
    )


def base_model_dir(recipe: SweepRecipe, arm: str | None = None) -> Path:
    """The model a condition starts from: the pretrained base (of its corpus arm, if any; content-addressed,
    built by `build_base`) or the train recipe's model (a tiny model is built once and cached)."""
    from cogrl.envs import make_env
    from cogrl.models import resolve_model
    from cogrl.pretraining import cached_base_dir

    if (pretraining := base_recipe(recipe, arm)) is not None:
        return cached_base_dir(pretraining)
    return resolve_model(recipe.train.model, make_env(recipe.train.env.name, recipe.train.env.options))


def build_base(recipe: SweepRecipe, out: Path, log: Log) -> dict[str, Any] | None:
    """Pretrain the sweep's base (one per corpus arm with `base.datasets`) unless a finished one with the same
    content address exists; returns what summary.json records of it (with arms: `{"arms": {arm: ...}}`;
    None without a `base` stage). Its wandb files go to <out>/base/ (<out>/base-<arm>/)."""
    if recipe.base is None:
        return None
    if recipe.base.datasets:
        return {"arms": {arm: build_one_base(recipe, out, log, arm) for arm in recipe.base.datasets}}
    return build_one_base(recipe, out, log, None)


def build_one_base(recipe: SweepRecipe, out: Path, log: Log, arm: str | None) -> dict[str, Any]:
    from cogrl.pretraining import METADATA_FILE, cached_base_dir, pretrain

    pretraining = base_recipe(recipe, arm)
    assert pretraining is not None
    target = cached_base_dir(pretraining)
    name = "base" if arm is None else f"base-{arm}"
    if (target / METADATA_FILE).is_file():
        log(f"{name}: reusing {target}")
    else:
        log(f"{name}: pretraining -> {target}")
        logging = pretraining.logging.model_copy(
            update={"wandb_group": wandb_group(recipe, out), "wandb_name": name, "wandb_tags": [name]}
        )
        pretrain(pretraining.model_copy(update={"logging": logging}), target, log, tracking_dir=out / name)
    meta = json.loads((target / METADATA_FILE).read_text(encoding="utf-8"))
    return {
        "dir": str(target),
        "content_address": meta["content_address"],
        "probes": meta["probes"],
        "tokens": meta["tokens"],
        "final_loss": meta["final_loss"],
        "seconds": meta["seconds"],
    }


def wandb_group(recipe: SweepRecipe, out: Path) -> str:
    """One wandb group per sweep directory: the sweep's name and the directory's."""
    return f"{recipe.name}:{out.resolve().name}"


def stage_logging(recipe: SweepRecipe, out: Path, run: SweepRun, stage: str) -> LoggingConfig:
    """The train recipe's logging, named and tagged for one stage of one (condition, seed)."""
    return recipe.train.logging.model_copy(
        update={
            "wandb_group": wandb_group(recipe, out),
            "wandb_name": f"{run.condition}/seed-{run.seed}/{stage}",
            "wandb_tags": [run.condition, f"seed-{run.seed}", stage],
        }
    )


def priming_env(recipe: SweepRecipe) -> Any:
    from cogrl.envs import make_env

    env = recipe.priming_env or recipe.train.env
    return make_env(env.name, env.options)


def build_priming_set(recipe: SweepRecipe, run: SweepRun, log: Log) -> None:
    from cogrl.models import load_tokenizer
    from cogrl.priming.conditions import get_condition
    from cogrl.priming.dataset import build_synthetic, save_priming_set, set_metadata

    condition = get_condition(run.priming)
    env = priming_env(recipe)
    tokenizer = load_tokenizer(base_model_dir(recipe, run.arm)) if condition.needs_tokenizer else None
    dataset = build_synthetic(
        env, condition, recipe.sft.n, recipe.priming_validation, seed=run.seed, tokenizer=tokenizer
    )
    meta = set_metadata(condition, env, "synthetic", run.seed, sweep=recipe.name)
    stats = save_priming_set(dataset, run.stage_dir("prime"), meta, env)
    log(f"{run.condition}: priming set of {stats['train']['rows']} rows -> {run.stage_dir('prime')}")


def prime_model(recipe: SweepRecipe, run: SweepRun, log: Log) -> None:
    from cogrl.priming.sft import run_sft

    config = recipe.sft.model_copy(update={"dataset": str(run.stage_dir("prime")), "condition": run.priming})
    run_sft(
        base_model_dir(recipe, run.arm),
        config,
        priming_env(recipe),
        seed=run.seed,
        out_dir=run.stage_dir("sft"),
        log=log,
        logging=stage_logging(recipe, run.sweep, run, "sft"),
        lora=recipe.train.model.lora,
    )


def rl_recipe(recipe: SweepRecipe, run: SweepRun, out: Path | None = None) -> TrainRecipe:
    """The train recipe of one condition: same RL, started from its primed model (or the pretrained base for
    `none`), with its seed; with `out`, its wandb run is named and grouped within the sweep."""
    raw = recipe.train.model_dump(mode="json")
    raw.update(name=f"{recipe.name}-{run.condition}-seed{run.seed}", seed=run.seed, warmup=None)
    if run.priming != NO_PRIMING:
        raw["model"] = {"path": str(run.stage_dir("sft").resolve()), "dtype": recipe.train.model.dtype}
    elif recipe.base is not None:
        raw["model"] = {"path": str(base_model_dir(recipe, run.arm)), "dtype": recipe.train.model.dtype}
    if out is not None:
        raw["logging"] = stage_logging(recipe, out, run, "rl").model_dump(mode="json")
    return validate_recipe(raw, TrainRecipe, source=f"sweep {recipe.name}, condition {run.condition}")


def train_rl(recipe: SweepRecipe, run: SweepRun, log: Log) -> None:
    from cogrl.rl.driver import Trainer
    from cogrl.rl.runs import RunDir

    rl_dir = run.stage_dir("rl")
    if rl_progress(rl_dir) is None:
        run_dir = RunDir.create(rl_recipe(recipe, run, run.sweep), rl_dir)
    else:
        run_dir = RunDir.resume(rl_dir)
        log(f"{run.condition}: resuming {rl_dir}")
    Trainer(run_dir, log=log).run()


Stage = Callable[[SweepRecipe, SweepRun, Log], None]


@dataclass(frozen=True)
class Stages:
    """What each stage does (tests substitute cheap ones to exercise the orchestration)."""

    prime: Stage = build_priming_set
    sft: Stage = prime_model
    rl: Stage = train_rl


# --------------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    runs: list[dict[str, Any]] = field(default_factory=list)
    base: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] == "failed"]


def same_recipe(saved: Path, recipe: SweepRecipe) -> bool:
    """Whether the sweep recorded in ``saved`` is ``recipe``, the saved one read through today's recipe model:
    a knob added to cogrl since (at its default) does not make a started sweep another one."""
    try:
        raw = read_recipe_yaml(saved)
        if isinstance(raw.get("sft"), dict):
            raw["sft"].pop("condition", None)  # dumped at its default; the sweep sets it per condition
        return validate_recipe(raw, SweepRecipe, source=str(saved)).model_dump() == recipe.model_dump()
    except InputError:
        return False


def run_sweep(recipe: SweepRecipe, out: Path, log: Log = print, stages: Stages = Stages()) -> SweepResult:
    """Run every stage not yet done, condition by condition; a failure is recorded in sweep.json, logged,
    and the next condition runs. Returns the status of every (condition, seed). The RL recipe's memory plan
    (the same for every condition: priming does not change the model's shape) is checked first."""
    plan_memory(recipe.train).check()
    out.mkdir(parents=True, exist_ok=True)
    saved = out / RECIPE_FILE
    if saved.exists() and not same_recipe(saved, recipe):
        raise InputError(
            f"{out}: holds a sweep with a different recipe ({saved}); use another --out or the same recipe"
        )
    write_atomic(saved, dump_recipe(recipe))
    result = SweepResult(base=build_base(recipe, out, log))
    for run in sweep_runs(recipe, out):
        entry: dict[str, Any] = {
            "condition": run.condition,
            "seed": run.seed,
            "dir": str(run.root.relative_to(out)) if run.root != out else ".",
        }
        try:
            for stage in run.stages:
                if stage_status(recipe, run, stage) == "done":
                    log(f"{run.condition} (seed {run.seed}): {stage} done, skipped")
                    continue
                log(f"{run.condition} (seed {run.seed}): {stage} ...")
                run.root.mkdir(parents=True, exist_ok=True)
                getattr(stages, stage)(recipe, run, log)
            entry["status"] = "done"
        except Exception as exc:  # one condition's failure must not cost the others their runs
            entry.update(status="failed", stage=stage, error=f"{type(exc).__name__}: {exc}")
            log(f"{run.condition} (seed {run.seed}): {stage} FAILED: {entry['error']}")
            traceback.print_exception(exc)  # to stderr: the sweep's log file under `cogrl sweep`
        result.runs.append(entry)
        write_atomic(out / MANIFEST, json.dumps({"sweep": recipe.name, "runs": result.runs}, indent=2) + "\n")
    result.summary = write_summary(recipe, out, result.base)
    for line in verdict.summary_lines(result.summary):
        log(line)
    return result


def write_summary(recipe: SweepRecipe, out: Path, base: dict[str, Any] | None) -> dict[str, Any]:
    """summary.json: per (condition, seed) the step-0 and final test accuracy, gain and pass@k; per condition
    their mean and sd over seeds; the base's figures; the gates and the verdict of the recipe's rule."""
    k = recipe.verdict.pass_k if recipe.verdict else recipe.train.trainer.eval_samples
    pass_key = f"eval/pass@{k}"
    runs = [
        verdict.run_result(r.condition, r.seed, r.stage_dir("rl"), pass_key) for r in sweep_runs(recipe, out)
    ]
    table = verdict.by_condition(runs, recipe.conditions)
    decision = None
    if recipe.verdict is not None:
        probes = base.get("probes", {}) if base else {}  # corpus arms have no probes
        probe = (probes.get(recipe.verdict.gate_probe) or {}).get("accuracy")
        decision = verdict.decide(recipe.verdict, runs, table, probe)
    summary = {
        "sweep": recipe.name,
        "metric": "eval/accuracy (first sample per test problem, temperature "
        f"{recipe.train.rollout.temperature:g}, {recipe.train.trainer.eval_problems} problems)",
        "pass_key": pass_key,
        "base": base,
        "runs": runs,
        "conditions": table,
        "verdict": decision,
    }
    write_atomic(out / verdict.SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary
