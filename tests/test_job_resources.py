"""What a job asks of the scheduler: the site's defaults, as the block of its stage
(slurm.finetune, slurm.evaluation) overrides them. Pure: site in, #SBATCH lines out."""

from __future__ import annotations

from pathlib import Path

from tunegit.core.jobplan import sbatch_options, site_resources
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


def test_without_stage_blocks_both_stages_get_the_defaults_and_one_gpu_per_evaluation() -> None:
    site = Site.model_validate({**SITE, "slurm": {"cpus_per_task": 4, "mem_gb": 32}})
    ft, ev = options(site, "finetune", 1), options(site, "evaluation", site.slurm.evaluation.gpus)
    assert ft == ev and ev["--gres"] == "gpu:1" and ev["--mem"] == "32G"
