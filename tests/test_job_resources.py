"""What a job asks of the scheduler: the site's defaults, as the block of its stage
(slurm.finetune, slurm.evaluation) overrides them (pure: site in, #SBATCH lines out), and
the time limits a plan sets itself (rendered from a plan in a repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfixtures import LOCAL_FILES, make_repo, tiny_plan
from test_local_executor import MISSING_MODEL
from tunegit.core.jobplan import job_name, job_options, sbatch_options, site_resources
from tunegit.core.reconcile import Submission
from tunegit.edges.analysis import Analysis, analyse
from tunegit.edges.scaffold import render_context, render_files
from tunegit.edges.workspace import PLAN_FILE, Workspace
from tunegit.errors import PlanError
from tunegit.loop.engine import job_plan
from tunegit.spec.site import Site

SITE = {"executor": "slurm", "models_dir": "m", "output_dir": "o",
        "gpu": {"type": "A100-80GB", "memory_gib": 80, "count": 4},
        "slurm": {"partition": "gpu", "qos": "normal", "cpus_per_task": 8, "mem_gb": 64,
                  "evaluation": {"mem_gb": 16, "cpus_per_task": 2, "partition": "gpu-short",
                                 "gpus": 0}}}


def options(site: Site, stage: str, gpus: int) -> dict[str, str]:
    block = site.slurm.finetune if stage == "finetune" else site.slurm.evaluation
    resources = site_resources(site, gpus=gpus, minutes=90, stage=block)
    lines = sbatch_options(name="j", chdir=Path("/w"), output=Path("/w/log"),
                           resources=resources)
    return dict(line.split("=", 1) for line in lines)


def test_an_evaluation_is_sized_apart_from_the_fine_tune() -> None:
    site = Site.model_validate(SITE)
    ft, ev = options(site, "finetune", 2), options(site, "evaluation", site.slurm.evaluation.gpus)
    assert (ft["--mem"], ft["--cpus-per-task"], ft["--partition"], ft["--gres"]) == (
        "64G", "8", "gpu", "gpu:2")
    assert (ev["--mem"], ev["--cpus-per-task"], ev["--partition"]) == ("16G", "2", "gpu-short")
    assert "--gres" not in ev  # gpus: 0, an evaluation on CPUs
    assert ft["--qos"] == ev["--qos"] == "normal"  # not overridden: the site's default


def test_a_gres_type_names_the_gpu_kind_in_every_gpu_job() -> None:
    site = Site.model_validate({**SITE, "gpu": {**SITE["gpu"], "gres_type": "a100"}})
    assert options(site, "finetune", 2)["--gres"] == "gpu:a100:2"
    assert "--gres" not in options(site, "evaluation", 0)


def test_without_stage_blocks_both_stages_get_the_defaults_and_one_gpu_per_evaluation() -> None:
    site = Site.model_validate({**SITE, "slurm": {"cpus_per_task": 4, "mem_gb": 32}})
    ft, ev = options(site, "finetune", 1), options(site, "evaluation", site.slurm.evaluation.gpus)
    assert ft == ev and ev["--gres"] == "gpu:1" and ev["--mem"] == "32G"


def limited(tmp_path: Path, **limits: int) -> tuple[Analysis, str]:
    name = "time_limited"
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES,
                     plans={name: tiny_plan(name, time_limits=limits)})
    ws = Workspace(repo)
    return analyse(ws, ws.experiment_dir(name) / PLAN_FILE), name


def test_a_plans_time_limits_replace_the_estimates_in_each_jobs_header(tmp_path: Path) -> None:
    a, name = limited(tmp_path, finetune_minutes=100, evaluation_minutes=7)
    ctx = render_context(a)
    files = render_files(ctx, a.expansion.runs, a.expansion.evaluations, None)
    run = a.expansion.runs[0]
    key = a.expansion.evaluations_of(run.name)[0].key
    for stage, time in ((None, "1:40:00"), (key, "0:07:00")):
        job = job_plan(Submission(run.name, stage, job_name(name, run.name, stage or "ft")),
                       a, ctx)
        assert f"--time={time}" in job_options(job)
        script = next(text for path, text in files.items() if a.work_dir / path == job.script)
        assert f"#SBATCH --time={time}\n" in script  # what sbatch reads is what is submitted


def test_a_time_limit_over_the_sites_maximum_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as raised:
        limited(tmp_path, finetune_minutes=5000)
    assert "time_limits.finetune_minutes: 5000 minutes, but site 'local' allows at most 1440 " \
        "per job" in raised.value.format()
    assert "raise slurm.time_limit_max_minutes in sites/local.yaml" in raised.value.format()


BIG_MODEL = MISSING_MODEL.replace("tiny-llama-missing", "tiny-llama-big") + (
    "    jobs: {finetune: {mem_gb: 48, cpus_per_task: 6}, evaluation: {mem_gb: 12}}\n")


def sized(tmp_path: Path, site_slurm: str = "") -> dict[tuple[str, str], dict[str, str]]:
    """(model, stage) -> its job's #SBATCH options, for a plan of two models, one of which
    the lab's catalog sizes."""
    name = "model_sized"
    plan = tiny_plan(name, models=["tunegit/tiny-llama", "tunegit/tiny-llama-big"],
                     factors=None, run_name="{model}")
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={name: plan},
                     texts={"models.yaml": BIG_MODEL})
    site = repo / "sites/local.yaml"
    site.write_text(site.read_text().replace("slurm: {", "slurm: {" + site_slurm))
    ws = Workspace(repo)
    a = analyse(ws, ws.experiment_dir(name) / PLAN_FILE)
    ctx = render_context(a)
    out = {}
    for run in a.expansion.runs:
        for key in (None, a.expansion.evaluations_of(run.name)[0].key):
            sub = Submission(run.name, key, job_name(name, run.name, key or "ft"))
            lines = job_options(job_plan(sub, a, ctx))
            out[run.name, "ft" if key is None else "eval"] = dict(
                line.split("=", 1) for line in lines)
    return out


def test_the_model_catalog_sizes_a_models_jobs_and_the_site_overrides_it(tmp_path: Path) -> None:
    jobs = sized(tmp_path / "catalog")
    sizes = {k: (v["--mem"], v["--cpus-per-task"]) for k, v in jobs.items()}
    assert sizes == {("tiny-llama", "ft"): ("32G", "4"), ("tiny-llama", "eval"): ("32G", "4"),
                     ("tiny-llama-big", "ft"): ("48G", "6"),
                     ("tiny-llama-big", "eval"): ("12G", "4")}
    site_wins = sized(tmp_path / "site", "finetune: {mem_gb: 100}, ")
    assert site_wins["tiny-llama-big", "ft"]["--mem"] == "100G"
    assert site_wins["tiny-llama", "ft"]["--mem"] == "100G"
    assert site_wins["tiny-llama-big", "ft"]["--cpus-per-task"] == "6"  # not overridden
    assert site_wins["tiny-llama-big", "eval"]["--mem"] == "12G"
