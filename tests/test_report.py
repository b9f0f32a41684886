"""Results and the report from real eval logs and real training logs.

The inspect logs are real, written offline by inspect with a solver that answers a known
set of samples right (inspect's mock model would count tokens with a tokenizer it
downloads); the training logs are recorded real torchtune output. runs_status.yaml points
at them as harvest leaves it. The report is opened in a real headless browser (Debian's
chromium; CI installs it): the page renders, its images decode, a screenshot is taken.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from planfixtures import LOCAL_FILES, make_repo, run_cli, tiny_plan
from tunegit.core.states import COMPLETED, FAILED
from tunegit.core.status import Step, dump, parse
from tunegit.edges import results_files as rf
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.tools import inspect_ai

pytestmark = pytest.mark.train

LOGS = Path(__file__).parent / "fixtures" / "logs"
RANK8, RANK32, BASE = "tiny-llama_rank8", "tiny-llama_rank32", "tiny-llama_base"
TUNED_KEY, BASE_KEY = "capitalization_epoch_0", "capitalization"
QUESTION = "Does rank <b>matter</b> & how?"
N = 10


def write_eval_log(log_dir: Path, right: set[int]) -> Path:
    """A real .eval log of N samples, ``right`` answered correctly; two scorers: inspect's
    match (C/I) and a graded one (1 for a right answer, 0.25 otherwise)."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score, Scorer, Target, match, mean, scorer
    from inspect_ai.solver import Generate, Solver, TaskState, solver

    @solver
    def answer() -> Solver:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            text = state.target.text if state.sample_id in right else "no idea"
            state.output = ModelOutput.from_content(model="mockllm/model", content=text)
            return state
        return solve

    @scorer(metrics=[mean()])
    def graded() -> Scorer:
        async def score(state: TaskState, target: Target) -> Score:
            return Score(value=1.0 if state.output.completion == target.text else 0.25)
        return score

    dataset = [Sample(input=f"word{i}", target=f"Word{i}", id=i) for i in range(N)]
    [log] = inspect_eval(Task(dataset=dataset, solver=answer(), scorer=[match(), graded()]),
                         model="mockllm/model", log_dir=str(log_dir), display="none")
    assert log.status == "success"
    return Path(log.location)


def test_inspect_reads_every_samples_score_of_every_scorer(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai")
    path = write_eval_log(tmp_path / "logs", right={0, 3})
    expected = {"match": {str(i): 1.0 if i in (0, 3) else 0.0 for i in range(N)},
                "graded": {str(i): 1.0 if i in (0, 3) else 0.25 for i in range(N)}}
    assert inspect_ai.read_sample_scores(str(path)) == expected
    assert inspect_ai.read_sample_scores(str(tmp_path / "logs")) == expected  # the newest
    assert inspect_ai.read_sample_scores(str(tmp_path / "nothing-here")) is None


RESULTS_MD = """\
| Run | Task | Epoch | Scorer | Metric | Score | 95% CI | n | Δ base | Δ 95% CI | Status | Note |
|-----|------|-------|--------|--------|-------|--------|---|--------|----------|--------|------|
| tiny-llama_rank8 | capitalization | 0 | match | accuracy | 0.600 | [0.313, 0.832] | 10 | +0.400 | [0.100, 0.700] | completed |  |
| tiny-llama_rank8 | capitalization | 0 | graded | mean | 0.700 | [0.475, 0.925] | 10 | +0.300 | [0.075, 0.525] | completed |  |
| tiny-llama_rank32 | capitalization | 0 | match | accuracy | 0.200 | [0.057, 0.510] | 10 | +0.000 | [0.000, 0.000] | completed |  |
| tiny-llama_rank32 | capitalization | 0 | graded | mean | 0.400 | [0.250, 0.625] | 10 | +0.000 | [0.000, 0.000] | completed |  |
| tiny-llama_base | capitalization | base | match | accuracy | 0.200 | [0.057, 0.510] | 10 | - | - | completed |  |
| tiny-llama_base | capitalization | base | graded | mean | 0.400 | [0.250, 0.625] | 10 | - | - | completed |  |
"""  # noqa: E501


@pytest.fixture
def experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An experiment whose three evaluations completed (rank 8 right on 6 of 10 samples,
    rank 32 and the base on the same 2) and whose fine-tunes left real torchtune logs."""
    pytest.importorskip("inspect_ai")
    pytest.importorskip("matplotlib")
    plan = tiny_plan("exp", question=QUESTION, factors={"lora_rank": [8, 32]}, controls=True,
                     training={"validation": True})
    root = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": plan})
    code, _, err = run_cli(capsys, root, "check", "--write", "-q", "experiments/exp")
    assert code == 0, err
    status_path = root / "experiments/exp" / STATUS_FILE
    status = parse(status_path.read_text())
    outputs = tmp_path / "outputs"
    for run, key, right in ((RANK8, TUNED_KEY, set(range(6))), (RANK32, TUNED_KEY, {0, 1}),
                            (BASE, BASE_KEY, {0, 1})):
        write_eval_log(outputs / run / "eval" / "logs", right)
        got = inspect_ai.read_eval_result(outputs / run / "eval" / "logs")  # as harvest does
        status = status.with_step(run, key, Step(
            COMPLETED, job_id=f"{run}-eval", output=got.log_path, last_updated="t",
            elapsed_s=90.0, score=got.score, metric=got.metric_name, samples=got.samples,
            metrics=got.scores))
    for run, job in ((RANK8, "101"), (RANK32, "102")):
        ck_out = outputs / run / "ck-out"
        (ck_out / "logs").mkdir(parents=True)
        shutil.copy(LOGS / "tiny-llama-2epochs-cpu.disklog.txt", ck_out / "logs" / "log_1.txt")
        job_log = outputs / run / "logs" / "finetune.log"
        job_log.parent.mkdir(parents=True)
        shutil.copy(LOGS / "tiny-llama-2epochs-cpu.out", job_log)
        status = status.with_step(run, None, Step(
            COMPLETED, job_id=job, output=str(ck_out), last_updated="t", log=str(job_log),
            elapsed_s=150.0, estimate={"train_minutes": 2.0, "source": "formula"}))
    status_path.write_text(dump(status))
    return root


def test_results_files_hold_every_scorer_with_intervals_and_the_loss_curves(
        experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, experiment, "results", "exp")
    assert code == 0, err
    directory = experiment / "experiments/exp"
    md = (directory / "results.md").read_text()
    assert md.split("\n\n")[2] == RESULTS_MD
    assert "Notes:" not in md  # every cell was computed from its eval log
    assert out.splitlines()[-1] == ("wrote experiments/exp/results.md, experiments/exp/"
                                    "results.csv, experiments/exp/results.png, "
                                    "experiments/exp/loss.png")
    for png in ("results.png", "loss.png"):
        assert (directory / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What the watcher calls writes the same bytes: nothing changes on a second pass.
    status = parse((directory / STATUS_FILE).read_text())
    loaded = Workspace(experiment).load_plan(directory / "experiment.yaml")
    assert rf.write_results(directory, loaded.plan, status) == []
    files = rf.results_files(loaded.plan, status)
    assert sorted(files) == ["loss.png", "results.csv", "results.md", "results.png"]
    assert files["results.md"] == md


def test_results_fall_back_on_runs_status_where_the_logs_are_gone(
        experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(experiment.parent / "outputs" / BASE)
    code, _, err = run_cli(capsys, experiment, "results", "exp", "--format", "csv")
    assert code == 0, err
    rows = (experiment / "experiments/exp/results.csv").read_text().splitlines()
    assert rows[1].startswith("tiny-llama_rank8,capitalization,0,match,accuracy,0.6,10,"
                              "0.312674,0.83182,wilson,tiny-llama_base,,,,,completed,"
                              "no paired difference")
    assert rows[5:] == [
        "tiny-llama_base,capitalization,,match,accuracy,0.2,10,0.056682,0.509838,wilson,,,,,,"
        "completed,interval from the score and n recorded in runs_status.yaml (the eval log "
        "is not here)",
        "tiny-llama_base,capitalization,,graded,mean,0.4,10,,,,,,,,,completed,\"no interval: "
        "it needs the eval log's per-sample scores (not here) or, for an accuracy, the n "
        "runs_status.yaml records\""]


def report_of(experiment: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run_cli(capsys, experiment, "report", "exp")
    assert code == 0, err
    assert out == "wrote experiments/exp/report.html\n"
    return (experiment / "experiments/exp/report.html").read_text()


def test_report_holds_plan_estimates_status_results_and_plots_in_one_page(
        experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status_path = experiment / "experiments/exp" / STATUS_FILE
    status = parse(status_path.read_text())
    status = status.with_step(RANK32, None, Step(
        FAILED, job_id="102", reason="JobFailed", message="exit 1: <OOM> & more",
        last_updated="t", elapsed_s=150.0, estimate={"train_minutes": 2.0, "source": "formula"},
        log=status.step(RANK32, None).log, output=status.step(RANK32, None).output))
    status_path.write_text(dump(status))
    html = report_of(experiment, capsys)
    # Plan text is escaped, never markup.
    assert "Does rank &lt;b&gt;matter&lt;/b&gt; &amp; how?" in html and "<b>" not in html
    assert "exit 1: &lt;OOM&gt; &amp; more" in html
    for section in ("plan", "estimates", "status", "results", "plots"):
        assert f'<section id="{section}">' in html
    assert "<tr><td>lora_rank</td><td>8, 32</td></tr>" in html
    assert ("<tr><td>tiny-llama_rank32</td><td>finetune</td><td class=\"state-failed\">failed"
            "</td><td>102</td><td class=\"num\">1</td><td class=\"num\">150 s</td>"
            "<td>JobFailed</td>") in html
    # Estimated 2 minutes at submission, measured 2.5: ratio 1.25; evaluations 1.5 minutes.
    assert ("<tr><td>tiny-llama_rank8</td><td class=\"num\">2.0</td><td class=\"num\">2.5</td>"
            "<td class=\"num\">1.25x</td>") in html
    assert "<td>formula (at submission)</td>" in html
    assert ("<td>tiny-llama_rank8</td><td>capitalization</td><td>0</td><td>match</td>"
            "<td>accuracy</td><td class=\"num\">0.600</td><td class=\"num\">[0.313, 0.832]"
            "</td><td class=\"num\">10</td><td class=\"num\">+0.400</td>") in html
    # Self-contained: both plots inline, nothing fetched.
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([a-z.]+)">',
                        html)
    assert images == ["results.png", "loss.png"]
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<script" not in html and "<link" not in html
    # Unchanged inputs, unchanged page.
    assert report_of(experiment, capsys) == html


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; CI installs it)")
    return found


# Once the page has loaded (images included), for each image: its alt, whether it decoded,
# its width, and how many drawn (opaque, not white) pixels its lower half has once painted
# on a canvas: a PNG cut short may still report its size, but draws nothing down there.
PROBE = """<script>
window.addEventListener("load", () => {
  const seen = [];
  for (const img of document.images) {
    const w = img.naturalWidth, h = img.naturalHeight;
    const decoded = img.complete && w > 0;
    let inked = 0;
    try {
      const canvas = document.createElement("canvas");
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, Math.floor(h / 2), w, h - Math.floor(h / 2)).data;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] > 0 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) inked++;
      }
    } catch (e) { inked = -1; }
    seen.push([img.alt, decoded, w, inked]);
  }
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify(seen);
  document.body.appendChild(probe);
});
</script>
</body>"""


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--hide-scrollbars",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_report_renders_in_a_real_browser_with_its_images_decoded(
        experiment: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    browser = chromium()
    from PIL import Image

    html = report_of(experiment, capsys)
    page = experiment / "experiments/exp/report.html"
    # A copy of the page with a probe that writes what each image decoded to into the DOM.
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE))
    dom = headless(browser, tmp_path / "profile", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    seen = json.loads(found.group(1).replace("&quot;", '"'))
    assert [alt for alt, *_ in seen] == ["results.png", "loss.png"]
    for alt, decoded, width, inked in seen:
        assert decoded and width > 100 and inked > 1000, (alt, decoded, width, inked)
    # The page itself, unmodified: a screenshot that is not blank.
    shot = tmp_path / "report.png"
    done = headless(browser, tmp_path / "profile", f"--screenshot={shot}",
                    "--window-size=1280,3000", page.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables and plots, not one fill
    white = max(count for count, colour in colours if colour == (255, 255, 255))
    assert white < 0.97 * 1280 * 3000
