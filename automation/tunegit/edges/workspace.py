"""The experiments repository on disk: finding it, its experiments and its sites."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tunegit.errors import PlanError, TunegitError
from tunegit.executors import EXECUTORS
from tunegit.spec import models
from tunegit.spec.loader import Located, load_file
from tunegit.spec.plan import Plan
from tunegit.spec.schema_errors import parse_model
from tunegit.spec.site import EXECUTORS_CONTEXT, Site, expand_path

PLAN_FILE = "experiment.yaml"
PLAN_MD = "runs_plan.md"
STATUS_FILE = "runs_status.yaml"
DESIGN_LOG = "design-experiment.log"


@dataclasses.dataclass(frozen=True)
class LoadedPlan:
    plan: Plan
    located: Located
    path: Path  # absolute path of experiment.yaml

    @property
    def directory(self) -> Path:
        return self.path.parent


@dataclasses.dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "experiments").is_dir() or (candidate / ".git").exists():
                return cls(candidate)
        raise TunegitError(
            f"no experiments repository found at or above {here}",
            hint="run tunegit inside a repository with an experiments/ directory",
        )

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def experiment_dir(self, name: str) -> Path:
        return self.root / "experiments" / name

    def experiments(self) -> list[str]:
        """The experiments: directories of experiments/ holding an experiment.yaml, neither
        of them a symbolic link (see ``links``)."""
        base = self.root / "experiments"
        if not base.is_dir():
            return []
        return sorted(p.parent.name for p in base.glob(f"*/{PLAN_FILE}")
                      if self.symlink_on(p) is None)

    def symlink_on(self, path: Path) -> Path | None:
        """The first symbolic link on the way from the repository root down to ``path`` (a
        path below the root), or None. What tunegit runs (plans, sites, the model catalog,
        task scripts) are regular files of the repository: a link could point anywhere, and
        what it points to was never reviewed."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return None
        current = self.root
        for part in parts:
            current = current / part
            if current.is_symlink():
                return current
        return None

    def links(self) -> list[str]:
        """Plans and site files that are symbolic links (or under one): refused, never run."""
        candidates = [*(self.root / "experiments").glob(f"*/{PLAN_FILE}"),
                      *(self.root / "sites").glob("*.yaml"), self.root / models.LAB_FILE]
        found = {self.symlink_on(p) for p in candidates if p.exists() or p.is_symlink()}
        return sorted(self.rel_lexical(p) for p in found if p is not None)

    def rel_lexical(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def refuse_link(self, path: Path, what: str) -> None:
        link = self.symlink_on(path)
        if link is not None:
            raise TunegitError(
                f"{self.rel_lexical(link)} is a symbolic link (to {link.readlink()}): "
                f"tunegit never runs {what} through a link",
                hint=f"commit the {what} itself as a regular file in the repository")

    def sites(self) -> list[str]:
        return sorted(
            p.stem for p in (self.root / "sites").glob("*.yaml") if not p.stem.endswith(".priors")
        )

    def resolve_experiment(self, arg: str) -> Path:
        """An experiment name, its directory, or its plan file -> the plan file path."""
        path = Path(arg)
        for candidate in (path, self.root / path, self.experiment_dir(arg)):
            for plan in (candidate, candidate / PLAN_FILE):
                if plan.is_file():
                    self.refuse_link(Path(os.path.abspath(plan)), "a plan")
                    return plan.resolve()
        known = ", ".join(self.experiments()) or "none yet"
        raise TunegitError(
            f"no experiment {arg!r} (looked for experiments/{arg}/{PLAN_FILE})",
            hint=f"known experiments: {known}; `tunegit new NAME` starts one",
        )

    def load_plan(self, plan_path: Path) -> LoadedPlan:
        self.refuse_link(plan_path, "a plan")
        located = load_file(plan_path, self.rel(plan_path))
        plan = parse_model(located, Plan)
        if plan.name != plan_path.parent.name and plan_path.name == PLAN_FILE:
            raise PlanError(
                problems=[
                    located.problem(
                        ("name",),
                        f"does not match the directory name {plan_path.parent.name!r}",
                        hint=f"rename the directory or set `name: {plan_path.parent.name}`",
                    )
                ]
            )
        twin = self.case_twin(plan.name)
        if twin is not None and plan_path.name == PLAN_FILE:
            raise PlanError(problems=[located.problem(
                ("name",), f"{plan.name!r} differs only by case from the experiment in "
                f"{self.rel(twin)}",
                hint="rename one of them: on a case-insensitive filesystem (macOS, Windows) they "
                "are one directory, and their jobs and outputs would mix")])
        return LoadedPlan(plan, located, plan_path)

    def case_twin(self, name: str) -> Path | None:
        """The plan of another experiment whose name equals ``name`` but for case, if any."""
        folded = name.casefold()
        for other in self.experiments():
            if other != name and other.casefold() == folded:
                return self.experiment_dir(other) / PLAN_FILE
        return None

    def site_path(self, name: str) -> Path:
        return self.root / "sites" / f"{name}.yaml"

    def load_site(self, name: str, *, located_plan: Located | None = None) -> Site:
        path = self.site_path(name)
        if not path.is_file():
            message = f"no site file sites/{name}.yaml"
            known = self.sites()
            hint = (f"known sites: {', '.join(known)}" if known else
                    "no sites yet: `tunegit init` writes sites/local.yaml (this machine) and "
                    "sites/cluster.yaml (a SLURM site to fill in)")
            if located_plan is not None:
                raise PlanError(problems=[located_plan.problem(("site",), message, hint)])
            raise TunegitError(message, hint=hint)
        self.refuse_link(path, "a site file")
        site = parse_model(load_file(path, self.rel(path)), Site,
                           context={EXECUTORS_CONTEXT: tuple(EXECUTORS)})
        return site.model_copy(update={"name": site.name or name})

    def load_models(self) -> models.Catalog:
        """The shipped model catalog, under the lab's own ``models.yaml`` where there is one."""
        path = self.root / models.LAB_FILE
        if not path.is_file():
            return models.shipped()
        self.refuse_link(path, "a model catalog")
        return models.parse_catalog(load_file(path, self.rel(path))).over(models.shipped())

    def site_dir(self, value: str) -> Path:
        """A site path: ~ and $VARS expanded; relative paths are relative to the repository."""
        expanded = Path(expand_path(value))
        return expanded if expanded.is_absolute() else self.root / expanded

    def work_dir(self, site: Site, experiment: str) -> Path:
        return self.site_dir(site.output_dir) / experiment
