"""Pure rendering of the committed artifacts: runs_plan.md and design-experiment.log."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from tunegit.core.checks import Check, DatasetInfo
from tunegit.core.estimate import PlanEstimate, Span, packing_density
from tunegit.core.expand import FACTOR_LABELS, Expansion, default_run_name, format_level
from tunegit.render.templating import environment
from tunegit.spec.plan import Plan
from tunegit.spec.site import Site

TREE_LIMIT = 12
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})$")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def minutes(m: float) -> str:
    if m < 1:
        return f"{m * 60:.0f} s"
    if m < 90:
        return f"{m:.0f} min"
    return f"{m / 60:.1f} h"


def span(s: Span) -> str:
    return f"{minutes(s.low)}–{minutes(s.high)}"


def gib(x: float) -> str:
    return f"{x:.1f}" if x >= 0.1 else f"{x:.3f}"


def created(plan: Plan) -> str:
    match = _DATE.search(plan.name)
    return match.group(1) if match else "(date not in the experiment name)"


def design_type(plan: Plan, exp: Expansion) -> str:
    sizes = [len(levels) for _, levels in exp.factor_levels if len(levels) > 1]
    if plan.type == "sanity_check":
        return "Sanity check"
    if len(sizes) >= 2:
        return "×".join(map(str, sizes)) + " Factorial Design"
    if sizes:
        return f"{sizes[0]}-level sweep"
    return "Single run"


def render_plan_md(plan: Plan, plan_text: str, plan_path: str, site: Site, exp: Expansion,
                   est: PlanEstimate, datasets: dict[str, DatasetInfo], work_dir: str) -> str:
    ctx = _context(plan, site, exp, est, datasets)
    ctx.update(plan_path=plan_path, plan_hash=content_hash(plan_text), work_dir=work_dir)
    return environment().get_template("runs_plan.md.j2").render(ctx)


def _context(plan: Plan, site: Site, exp: Expansion, est: PlanEstimate,
             datasets: dict[str, DatasetInfo]) -> dict[str, Any]:
    ft, ctl = exp.finetuned, exp.controls
    tasks = plan.evaluation.tasks
    by_run = {r.name: r for r in est.runs}
    ft_evals = [e for e in exp.evaluations if e.epoch is not None]
    base_evals = [e for e in exp.evaluations if e.epoch is None]
    ctx: dict[str, Any] = dict(
        name=plan.name, design=design_type(plan, exp), question=plan.question.strip(),
        total_runs=len(exp.runs), finetune_count=len(ft), control_count=len(ctl),
        task_names=", ".join(t.name for t in tasks), created=created(plan), site_name=site.name,
        executor=site.executor, gpu=_gpu(site), tools=plan.tools,
        variables=[(k, ", ".join(format_level(v) for v in levels))
                   for k, levels in exp.factor_levels],
        runs=[dict(name=r.name, model=r.model, rank="-" if r.is_control else r.lora_rank,
                   batch=r.batch_size, kind="Control" if r.is_control else "Fine-tuned",
                   time="eval only" if r.is_control else
                   minutes(by_run[r.name].train_minutes.value)) for r in exp.runs],
        models_dir=site.models_dir,
        models=[dict(name=m, path=f"{site.models_dir.rstrip('/')}/{m}")
                for m in dict.fromkeys(r.model for r in exp.runs)],
        datasets=[_dataset(path, datasets.get(path))
                  for path in dict.fromkeys(r.dataset for r in exp.runs)],
        epochs_text=_epochs_text(plan), ft_tasks_text=_per(len(ft_evals), len(ft), "tasks"),
        ft_epochs_text=_epoch_count(plan, exp), ft_eval_jobs=len(ft_evals),
        base_tasks_text=_per(len(base_evals), len(ctl), "tasks"), base_eval_jobs=len(base_evals),
        total_eval_jobs=len(exp.evaluations),
        tasks=[dict(name=t.name, script=t.script,
                    dataset=(f"{t.dataset} ({t.split} split)" if t.dataset == "training"
                             else t.dataset),
                    description=t.description or "-") for t in tasks],
        task_header=" | ".join(t.name for t in tasks),
        task_rule="|".join("-" * max(3, len(t.name) + 2) for t in tasks),
        matrix=_matrix(plan, exp),
        **_configuration(plan, exp, datasets),
        run_name_pattern=plan.run_name or default_run_name([k for k, _ in exp.factor_levels]),
        tree_runs=[r.name for r in ft[:TREE_LIMIT]], tree_more=max(0, len(ft) - TREE_LIMIT),
        **_compute(est, exp),
        model_names=",".join(dict.fromkeys(r.model for r in exp.runs)),
        dataset_paths=", ".join(f"`{d}`" for d in dict.fromkeys(r.dataset for r in exp.runs)),
        eval_scripts=", ".join(f"`{t.script}`" for t in tasks),
        notes=plan.notes.strip() or "None.",
    )
    return ctx


def _gpu(site: Site) -> str:
    if site.gpu.type == "cpu":
        return "none (CPU)"
    return f"{site.gpu.count} × {site.gpu.type} ({site.gpu.memory_gib:g} GiB)"


def _dataset(path: str, info: DatasetInfo | None) -> dict[str, str]:
    if info is None:
        return dict(path=path, size="not verifiable here", splits="not verifiable here")
    return dict(path=path, size=f"{info.size_bytes / 1024:.0f} KB",
                splits=", ".join(f"{k} ({n})" for k, n in info.splits))


def _epochs_text(plan: Plan) -> str:
    choice = plan.evaluation.epochs
    if isinstance(choice, list):
        return "epochs " + ", ".join(f"epoch_{e}" for e in choice)
    return {"last": "last epoch only", "first": "first epoch only (epoch_0)",
            "all": "all epochs", "best": "best epoch by validation loss"}[choice]


def _epoch_count(plan: Plan, exp: Expansion) -> str:
    choice = plan.evaluation.epochs
    if isinstance(choice, list):
        return f"{len(choice)} epochs"
    if choice == "all":
        counts = sorted({r.epochs for r in exp.finetuned})
        return "/".join(map(str, counts)) + " epochs"
    return "1 epoch"


def _per(total: int, runs: int, what: str) -> str:
    if runs == 0:
        return f"0 {what}"
    per = total / runs
    return f"{per:g} {what}" if per == int(per) else f"{per:.1f} {what} (on average)"


def _matrix(plan: Plan, exp: Expansion) -> list[dict[str, str]]:
    rows = []
    listed = plan.evaluation.matrix or {}
    for run in exp.runs:
        have = {e.task for e in exp.evaluations_of(run.name)}
        cells = " | ".join("✓" if t.name in have else "-" for t in plan.evaluation.tasks)
        note = "All evals" if len(have) == len(plan.evaluation.tasks) else "Selected evals"
        if run.name in listed:
            note += " (matrix)"
        note += ", control" if run.is_control else ""
        rows.append(dict(run=run.name, cells=cells, notes=note))
    return rows


def _distinct(values: Sequence[Any]) -> str:
    return ", ".join(format_level(v) for v in dict.fromkeys(values))


def _configuration(plan: Plan, exp: Expansion, datasets: dict[str, DatasetInfo]) -> dict[str, Any]:
    ft = exp.finetuned or exp.runs
    info = datasets.get(ft[0].dataset) if ft else None
    t = plan.training
    density = (f"~{packing_density(info.mean_chars, t.system_prompt, t.max_seq_len):.1f} examples "
               f"per sequence (estimated from the dataset's mean example length)"
               if info else "unknown (dataset not visible)")
    per_model: dict[str, set[int]] = {}
    for r in ft:
        per_model.setdefault(r.model, set()).add(r.batch_size)
    return dict(
        recipes=", ".join(dict.fromkeys(r.recipe for r in ft)), gpus=t.gpus,
        epochs=_distinct([r.epochs for r in ft]),
        packed=("True - examples are concatenated up to max_seq_len (fewer steps, more memory "
                "per step)" if t.packed else "False - one example per sequence"),
        density=density if t.packed else "n/a (packing off)",
        packing_memory=("~density × 0.9 of unpacked memory per sequence"
                        if t.packed else "none"),
        batch_sizes=", ".join(f"{_distinct(sorted(v))} ({m})" for m, v in per_model.items()),
        grad_accum=(f"{_distinct([r.gradient_accumulation_steps for r in ft])} (effective "
                    f"batch size: {_distinct([r.effective_batch_size for r in ft])})"),
        alphas=(_distinct([r.lora_alpha for r in ft])
                + f" for rank {_distinct([r.lora_rank for r in ft])}"),
        learning_rates=_distinct([r.learning_rate for r in ft]),
        max_seq_len=_distinct([r.max_seq_len for r in ft]),
        validation="yes" if t.validation else "no", seed=_distinct([r.seed for r in ft]),
        system_prompt=repr(t.system_prompt) if t.system_prompt else '"" (none)',
    )


def _compute(est: PlanEstimate, exp: Expansion) -> dict[str, Any]:
    groups, eval_rows, ckpt_rows = [], [], []
    for model in dict.fromkeys(r.model for r in exp.runs):
        names = [r.name for r in exp.runs if r.model == model]
        ests = [est.run(n) for n in names]
        trained = [e for e in ests if not e.is_control]
        runs = [e.run for e in trained]
        if trained:
            first, run0 = trained[0], runs[0]
            total = sum((e.train_minutes for e in trained), Span.exact(0))
            gpu_minutes = sum(e.train_minutes.value * r.gpus
                              for e, r in zip(trained, runs, strict=True))
            groups.append(dict(
                model=model, source=first.source,
                it_s=f"{first.it_per_s:.2f}" if first.it_per_s else "",
                batch=run0.batch_size, steps=first.steps_per_epoch,
                per_run=minutes(first.train_minutes.value), range=span(first.train_minutes),
                epochs=run0.epochs, count=len(trained), total=minutes(total.value),
                gpu_hours=f"{gpu_minutes / 60:.2f}"))
            ckpt_rows.append(dict(model=model, gib=gib(first.checkpoint_gib), runs=len(trained),
                                  epochs=run0.epochs,
                                  total=gib(len(trained) * run0.epochs * first.checkpoint_gib)))
        n_eval = sum(e.evaluations for e in ests)
        if n_eval:
            per = sum(e.eval_minutes.value for e in ests) / n_eval
            eval_rows.append(dict(model=model, per_eval=minutes(per), count=n_eval))
    par, seq, mixed = est.scenarios
    return dict(
        model_groups=groups, eval_per_model=eval_rows, ckpt_per_model=ckpt_rows,
        parallel=_scenario(par), sequential=_scenario(seq),
        scenarios=[_scenario(s) for s in est.scenarios],
        train_gpu_hours=f"{est.train_gpu_hours:.2f}", eval_gpu_hours=f"{est.eval_gpu_hours:.2f}",
        gpu_hours=f"{est.gpu_hours:.2f}", eval_total=minutes(est.eval_minutes.value),
        ckpt_disk=gib(est.checkpoint_disk_gib), eval_disk_mb=f"{est.eval_disk_gib * 1024:.0f}",
        eval_disk_gib=gib(est.eval_disk_gib), total_disk=gib(est.disk_gib),
        estimate_note=("Some estimates come from the fallback tables and are **preliminary**; "
                       "actual times will vary. Run one short job to calibrate."
                       if est.preliminary else
                       "Estimates are based on prior runs recorded in the repository; actual times "
                       "may vary with cluster load and GPU type."),
        _unused=mixed,
    )


def _scenario(s: Any) -> dict[str, Any]:
    return dict(name=s.name, gpus=s.gpus, train=minutes(s.train_minutes),
                evals=minutes(s.eval_minutes), total=minutes(s.total_minutes))


# --- design-experiment.log --------------------------------------------------------------------

def render_design_log(plan: Plan, exp: Expansion, checks: Sequence[Check], est: PlanEstimate,
                      timestamp: str) -> str:
    """Timestamped VERIFY_* / CALCULATE_* / DECIDE_* entries, each
    ``[YYYY-MM-DD HH:MM:SS] ACTION: brief`` then a Command/Calculation/Decision line, a
    Result line and an Explanation line."""
    entries: list[tuple[str, str, str, str, str]] = []
    for c in checks:
        entries.append((c.action, f"Checking {c.subject}", f"Command: {c.command}", c.result,
                        c.explanation))
    for r in est.runs:
        for line in r.calculations:
            entries.append(("CALCULATE_TIME" if "min" in line else "CALCULATE_BATCH",
                            f"Estimate for {r.name}", f"Calculation: {line}",
                            f"{minutes(r.train_minutes.value)} training, "
                            f"{minutes(r.eval_minutes.value)} evaluation",
                            f"Source: {r.source}"))
    entries.append(("CALCULATE_DISK", "Disk space estimate",
                    f"Calculation: checkpoints {gib(est.checkpoint_disk_gib)} GiB + eval logs "
                    f"{gib(est.eval_disk_gib)} GiB + 15%", f"{gib(est.disk_gib)} GiB",
                    "Checked against the site's scratch before submitting"))
    pattern = plan.run_name or default_run_name([k for k, _ in exp.factor_levels])
    entries.append(("DECIDE_NAMING", f"Run names from pattern {pattern}",
                    f"Decision: {len(exp.runs)} runs: {', '.join(r.name for r in exp.runs[:8])}"
                    + (" ..." if len(exp.runs) > 8 else ""), "names unique, [A-Za-z0-9._-] only",
                    "Labels: " + ", ".join(f"{k}->{v}" for k, v in FACTOR_LABELS.items()
                                           if any(k == f for f, _ in exp.factor_levels)) or "none"))
    recipes = ", ".join(dict.fromkeys(r.recipe for r in exp.finetuned)) or "none (controls only)"
    entries.append(("DECIDE_RECIPE", "Recipe from GPUs and validation", f"Decision: {recipes}",
                    "LoRA alpha = 2 x rank",
                    "1 GPU: lora_finetune_single_device, more: lora_finetune_distributed; "
                    "+ _val when validating"))
    entries.append(("COMPLETE", "Plan checked", f"Status: {len(exp.runs)} runs, "
                    f"{len(exp.evaluations)} evaluations, {est.gpu_hours:.2f} GPU hours",
                    "runs_plan.md rendered", "Next: merge the PR; the watcher submits it"))
    out = []
    for action, brief, detail, result, why in entries:
        out.append(f"[{timestamp}] {action}: {brief}\n{detail}\nResult: {result}\n"
                   f"Explanation: {why}\n")
    return "\n".join(out)


def strip_timestamps(log: str) -> str:
    return re.sub(r"^\[[^\]]*\] ", "", log, flags=re.M)
