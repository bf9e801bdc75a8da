"""The Dagster UI in a real headless Chromium, against ``exosphere dev`` on a copy of examples/.

* the reference cluster's job graph renders with its satellites as op nodes;
* a run of a small bring-your-own cluster, launched from the UI's launchpad, succeeds;
* a broken YAML dropped into the watched folder shows its error, and once fixed its job appears.
* 3 items, 1 failing, no failure branch: 2 deliveries to a local webhook in the first run, a
  red step naming the item, the counts in the Catalog; "From failure" delivers the third.
* issue 21: an op's description (its satellite's docstrings, the chunk step keys) and named
  types; a failure that starts with the item; cost in plain decimals; Launchpad keys as the
  file spelled them; one summary edge per segment end (screenshot).

Screenshots go to ``test-artifacts/ui/`` (git-ignored). Chromium is Debian's ``/usr/bin/chromium``
(or ``EXOSPHERE_CHROMIUM``); without it the tests skip locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from exosphere_dagster.entry.devserver import free_port
from satellite_env import satellite_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
LOCATION = "exosphere_dagster.definitions"
REFERENCE_JOB = "aikin__strucutred_pdfs"
REFERENCE_OPS = (
    "exosphere__start",
    "get_files_from_s3",
    "parse_pdf_with_docling",
    "deepseek_r1_distrill_llama_70b",
    "call_webhook",
    "delete_file_from_s3",
    "move_to_failure_bucket",
    "send_pagerduty_alert",
    "exosphere__summary",
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HELLO_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: uitest/hello
  title: Browser test cluster
  sla: 6h
  trigger: api-call
  satellites:
    - uses: satellite/uitest/split
      identifier: split
      config: {count: 2}
    - uses: satellite/uitest/shout
      identifier: shout
      config:
        text: item ${{ satellites.split.output.n }} for ${{ satellites.split.output.who }}
"""
PICKY_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: uitest/picky
  sla: 6h
  trigger: api-call
  retries: 0
  satellites:
    - uses: satellite/uitest/split
      identifier: split
      config: {count: 3}
    - uses: satellite/uitest/picky
      identifier: picky
      config: {refuse_n: 1}
"""
LAUNCH = """
mutation($p: ExecutionParams!) {
  launchRun(executionParams: $p) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
BROKEN_CLUSTER = HELLO_CLUSTER.replace("uitest/hello", "uitest/fixed").replace("sla: 6h", "sla: 7h")
FIXED_CLUSTER = HELLO_CLUSTER.replace("uitest/hello", "uitest/fixed")
RUN_CONFIG = "ops:\n  exosphere__start:\n    config:\n      inputs:\n        - who: chromium\n"
JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


def chromium_path() -> str | None:
    return (
        os.environ.get("EXOSPHERE_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached in {timeout:.0f}s (last: {last!r})")


def scaffold_config(page, op: str) -> str:
    """Clear the Launchpad editor, press "Scaffold all default config" and return the config
    once it names ``op``."""
    page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.setValue('')")
    page.get_by_role("button", name="Scaffold all default config").click()
    page.get_by_role("button", name="Confirm").click()
    value = "() => document.querySelector('.CodeMirror').CodeMirror.getValue()"
    return wait_for(
        lambda: f"{op}:" in page.evaluate(value) and page.evaluate(value),
        timeout=30,
        what="the scaffolded config",
    )


@dataclass
class DevServer:
    url: str
    folder: Path
    log: Path

    def job_names(self) -> set[str]:
        response = httpx.post(f"{self.url}/graphql", json={"query": JOBS_QUERY}, timeout=20)
        repos = response.json()["data"]["repositoriesOrError"].get("nodes", [])
        return {job["name"] for repo in repos for job in repo["jobs"]}


def _child_pids(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _default_sigint() -> None:
    # `dagster dev` makes SIGTERM do what SIGINT does; an inherited "ignore SIGINT" (a shell's
    # background job) would make it ignore SIGTERM as well.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("ui")
    folder = root / "clusters"
    shutil.copytree(REPO / "examples", folder)
    (folder / "browser-hello.yml").write_text(HELLO_CLUSTER)
    (folder / "browser-picky.yml").write_text(PICKY_CLUSTER)
    home = root / "dagster_home"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        **satellite_env(HERE, "ui_satellites"),
    }
    log = root / "exosphere-dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exosphere_dagster.entry.cli",
                "dev",
                str(folder),
                "--port",
                str(port),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    server = DevServer(f"http://127.0.0.1:{port}", folder, log)
    try:
        wait_for(
            lambda: {REFERENCE_JOB, "uitest__hello", "uitest__picky"} <= server.job_names(),
            timeout=120,
            what=f"exosphere dev serving both clusters (log: {log})",
        )
        yield server
    finally:
        dagster_dev = _child_pids(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *dagster_dev]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, ARTIFACTS / "exosphere-dev.log")


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory):
    executable = chromium_path()
    if executable is None:
        message = "Chromium not found (apt-get install chromium, or set EXOSPHERE_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1200},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(30_000)
        # A fresh instance greets the first visit with a "Join the Dagster community" dialog.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        try:
            yield page
        finally:
            context.close()


@pytest.fixture
def page(browser_page, dev_server, request):
    """The shared page; on a failed test its screen is saved as ``FAILED-<test>.png``."""
    yield browser_page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        with contextlib.suppress(Exception):
            browser_page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def job_url(server: DevServer, job: str, tab: str = "") -> str:
    return f"{server.url}/locations/{LOCATION}/jobs/{job}{tab}"


def job_link(page, job: str):
    """The link to ``job`` in the code location's job list (its accessible name is "job NAME")."""
    return page.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(job)}$"))


def goto_until(page, url: str, locator: Callable[[], object], timeout: float) -> None:
    """Open ``url`` again until ``locator()`` is visible (the code location reloads meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        try:
            locator().wait_for(state="visible", timeout=5_000)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise


def test_reference_cluster_graph_renders_its_satellites(page, dev_server):
    from playwright.sync_api import expect

    page.goto(job_url(dev_server, REFERENCE_JOB))
    expect(
        page.get_by_text("Structured JSON from Quarterly Financial Reports").first
    ).to_be_visible()
    for op in REFERENCE_OPS:
        expect(page.get_by_text(op, exact=True).first).to_be_visible()
    # one node per satellite: the only other nodes are start, one re-chunk after the S3
    # listing, the failure branch's gathering op and the summary
    expect(page.get_by_text("get_files_from_s3__rechunk", exact=True).first).to_be_visible()
    expect(page.get_by_text("exosphere__failures", exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"__chunks$"))).to_have_count(0)
    page.wait_for_timeout(500)  # let the graph's layout animation settle before the picture
    shot(page, "1-reference-cluster-graph")

    page.get_by_text("parse_pdf_with_docling", exact=True).first.click()
    expect(page.get_by_text("satellite/exospherehost/parse-pdf-with-docling").first).to_be_visible()
    shot(page, "2-reference-cluster-satellite-selected")


def test_run_launched_from_the_launchpad_succeeds(page, dev_server):
    from playwright.sync_api import expect

    page.goto(job_url(dev_server, "uitest__hello", "/playground"))
    launch = page.get_by_role("button", name="Launch Run")
    expect(launch).to_be_enabled(timeout=60_000)  # a fresh server may still be loading
    page.locator(".CodeMirror").first.wait_for()
    page.evaluate(
        "config => document.querySelector('.CodeMirror').CodeMirror.setValue(config)", RUN_CONFIG
    )
    expect(page.get_by_text("who: chromium").first).to_be_visible()
    expect(page.get_by_text("No errors").first).to_be_visible()
    shot(page, "3-launchpad")
    clicked = time.monotonic()
    launch.click()
    page.wait_for_url("**/runs/**")
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    def status() -> str | None:
        for word in ("Success", "Failure", "Canceled"):
            if page.get_by_text(word, exact=True).first.is_visible():
                return word
        return None

    final = wait_for(status, timeout=150, what=f"run {run_id} finishing in the UI")
    record_launch_time(dev_server, run_id, time.monotonic() - clicked)
    shot(page, "4-run-finished")
    assert final == "Success", f"run {run_id} ended {final}; see {ARTIFACTS}"
    page.get_by_placeholder("Filter").first.fill("shouted")
    expect(page.get_by_text("shouted ITEM 0 FOR CHROMIUM").first).to_be_visible()
    expect(page.get_by_text("shouted ITEM 1 FOR CHROMIUM").first).to_be_visible()
    shot(page, "5-run-events-from-the-satellite")


def record_launch_time(server: DevServer, run_id: str, seen: float) -> None:
    """Wall time of a UI launch (click to the final status shown), beside Dagster's own times
    of the run: written to launch-wall-time.txt and printed (bench/results keeps a copy)."""
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { creationTime startTime endTime } } }"
    run = httpx.post(
        f"{server.url}/graphql", json={"query": query, "variables": {"id": run_id}}, timeout=20
    ).json()["data"]["runOrError"]
    text = (
        f"UI launch of uitest__hello (2 items, 2 satellites), run {run_id}: "
        f"{seen:.1f} s from the Launch Run click to the final status on the run page; "
        f"Dagster: created to end {run['endTime'] - run['creationTime']:.1f} s "
        f"(queued {run['startTime'] - run['creationTime']:.1f} s, "
        f"started to end {run['endTime'] - run['startTime']:.1f} s); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "launch-wall-time.txt").write_text(text)
    print(text, end="")


def test_broken_file_shows_its_error_and_the_fixed_file_appears(page, dev_server):
    from playwright.sync_api import expect

    broken = dev_server.folder / "dropped.yml"
    broken.write_text(BROKEN_CLUSTER)
    goto_until(
        page,
        job_url(dev_server, "invalid__dropped"),
        lambda: page.get_by_text("This cluster file failed to load").first,
        timeout=60,
    )
    expect(page.get_by_text("cluster.sla").first).to_be_visible()
    expect(page.get_by_text("found: string '7h'").first).to_be_visible()
    shot(page, "6-broken-file-error")

    broken.write_text(FIXED_CLUSTER)
    jobs_page = f"{dev_server.url}/locations/{LOCATION}/jobs"
    goto_until(page, jobs_page, lambda: job_link(page, "uitest__fixed"), timeout=60)
    expect(job_link(page, "invalid__dropped")).to_have_count(0)
    expect(job_link(page, REFERENCE_JOB)).to_be_visible()
    shot(page, "7-fixed-file-listed")

    job_link(page, "uitest__fixed").click()
    expect(page.get_by_text("shout", exact=True).first).to_be_visible()
    expect(page.get_by_text("split", exact=True).first).to_be_visible()
    shot(page, "8-fixed-cluster-graph")
    assert "invalid__dropped" not in dev_server.job_names()


def test_launchpad_shows_a_satellites_typed_config(page, dev_server):
    """The satellite op's config is its model: a wrong type is flagged before launch."""
    from playwright.sync_api import expect

    page.goto(job_url(dev_server, "uitest__hello", "/playground"))
    page.locator(".CodeMirror").first.wait_for()
    bad = "ops:\n  split:\n    config:\n      count: many\n"
    page.evaluate(
        "config => document.querySelector('.CodeMirror').CodeMirror.setValue(config)", bad
    )
    expect(page.get_by_text(re.compile(r"Int")).first).to_be_visible()
    expect(page.get_by_text("No errors")).to_have_count(0)
    shot(page, "9-launchpad-typed-config-error")
    good = "ops:\n  split:\n    config:\n      count: 2\n"
    page.evaluate(
        "config => document.querySelector('.CodeMirror').CodeMirror.setValue(config)", good
    )
    expect(page.get_by_text("No errors").first).to_be_visible()
    scaffold = scaffold_config(page, "split")
    assert re.search(r"split:\s+config:\s+count: 2", scaffold)  # the cluster file's values
    assert "satellites.split.output.n" in scaffold  # templates stay as written
    page.get_by_role("dialog").wait_for(state="detached")
    shot(page, "9b-launchpad-defaults-from-the-cluster-file")


def test_a_failed_item_turns_its_chunk_step_red(page, dev_server):
    from playwright.sync_api import expect

    run_id = launch(dev_server, "uitest__picky", {})
    page.goto(f"{dev_server.url}/runs/{run_id}")

    assert (
        wait_for(lambda: run_page_status(page), timeout=150, what=f"run {run_id} finishing")
        == "Failure"
    )
    expect(page.get_by_text("picky[c00000]").first).to_be_visible()
    page.get_by_placeholder("Filter").first.fill("not acceptable")
    expect(page.get_by_text(re.compile(r"item input\.0\.1~[0-9a-f]{12}")).first).to_be_visible()
    shot(page, "10-red-chunk-step-names-the-item")

    # issue 21: the step's failure starts with the item and its error, not Dagster's class
    page.get_by_placeholder("Filter").first.fill('Execution of step "picky')
    first_words = re.compile(r"^ItemFailed: input\.0\.1~[0-9a-f]{12} at 'picky': ValueError")
    expect(page.get_by_text(first_words).first).to_be_visible()
    expect(page.get_by_text("dagster._core.definitions.events.Failure")).to_have_count(0)
    shot(page, "29-failure-starts-with-the-item")

    # and the satellite's cost on its asset reads in plain decimals (not 3.7e-7)
    goto_until(
        page,
        f"{dev_server.url}/assets/uitest__picky/picky",
        lambda: page.get_by_text("cost_usd", exact=True).first,
        timeout=60,
    )
    row = page.get_by_role("row").filter(has=page.get_by_text("cost_usd", exact=True)).first
    expect(row.get_by_role("cell").last).to_have_text(re.compile(r"^\s*\d+\.\d+\s*$"))
    shot(page, "30-asset-cost-in-plain-decimals")


def test_the_cluster_shows_in_the_lineage_view(page, dev_server):
    from playwright.sync_api import expect

    goto_until(
        page,
        f"{dev_server.url}/asset-groups",
        lambda: page.get_by_text(REFERENCE_JOB).first,
        timeout=60,
    )
    expect(page.get_by_text("external").first).to_be_visible()  # the S3 prefix, the webhook
    shot(page, "11-lineage-groups")
    group = f"{dev_server.url}/locations/{LOCATION}/asset-groups/{REFERENCE_JOB}/lineage"
    goto_until(page, group, lambda: page.get_by_text("call_webhook").first, timeout=60)
    # long names are shortened in the graph (pars…_with_docling); these fit whole
    expect(page.get_by_text("get_files_from_s3").first).to_be_visible()
    page.wait_for_timeout(500)  # let the layout settle before the picture
    shot(page, "12-lineage-reference-cluster")


RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key } } } }"
# what a local run of a cluster starts with (docs/sla.md): the queue's and run monitoring's
# tags, and the cluster to filter by; the summary adds its counts and cost at the end
STARTING_TAGS = {
    "dagster/priority",
    "dagster/max_runtime",
    "exosphere/sla",
    "exosphere/cluster",
    "exosphere/cluster_file",
}


def launch(server: DevServer, job: str, run_config: dict) -> str:
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": run_config,
    }
    response = httpx.post(
        f"{server.url}/graphql", json={"query": LAUNCH, "variables": {"p": params}}, timeout=30
    ).json()["data"]["launchRun"]
    assert response["__typename"] == "LaunchRunSuccess", response
    return response["run"]["runId"]


def run_page_status(page) -> str | None:
    """The final status a run's page shows, or None while it runs."""
    for word in ("Success", "Failure"):
        if page.get_by_text(word, exact=True).first.is_visible():
            return word
    return None


def finished_run(server: DevServer, run_id: str) -> dict:
    def done() -> dict | None:
        run = httpx.post(
            f"{server.url}/graphql",
            json={"query": RUN_QUERY, "variables": {"id": run_id}},
            timeout=20,
        ).json()["data"]["runOrError"]
        return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_for(done, timeout=150, what=f"run {run_id} finishing")


def test_a_local_run_shows_few_tags_and_no_kubernetes_config(page, dev_server):
    from playwright.sync_api import expect

    inputs = {"ops": {"exosphere__start": {"config": {"inputs": [{"who": "tags"}]}}}}
    run_id = launch(dev_server, "uitest__hello", inputs)
    run = finished_run(dev_server, run_id)
    keys = {t["key"] for t in run["tags"]}
    assert "dagster-k8s/config" not in keys
    # a deadline-sensor tick during the run stamps its window (docs/sla.md): two tags more
    stamped = {"exosphere/trigger_time", "exosphere/deadline"}
    assert keys >= STARTING_TAGS and len(keys - stamped) <= 13, sorted(keys)
    page.goto(f"{dev_server.url}/runs")
    expect(page.get_by_text(run_id[:8], exact=True).first).to_be_visible()
    expect(page.get_by_text("exosphere/cluster: uitest/hello").first).to_be_visible()
    expect(page.get_by_text("exosphere/sla: 6h").first).to_be_visible()
    expect(page.get_by_text("dagster-k8s")).to_have_count(0)
    shot(page, "21-runs-list-local-run-tags")

    page.goto(job_url(dev_server, "uitest__hello", "/playground"))
    expect(page.get_by_role("button", name="Launch Run")).to_be_enabled(timeout=60_000)
    expect(page.get_by_text("dagster-k8s")).to_have_count(0)  # the launchpad's job tags
    shot(page, "22-launchpad-without-kubernetes-tag")


def test_external_assets_are_titled_by_service_and_place(page, dev_server):
    from playwright.sync_api import expect

    group = f"{dev_server.url}/locations/{LOCATION}/asset-groups/{REFERENCE_JOB}/lineage"
    goto_until(page, group, lambda: page.get_by_text("call_webhook").first, timeout=60)
    for title in ("PagerDuty", "New Relic"):  # short titles fit whole in the graph
        expect(page.get_by_text(title, exact=True).first).to_be_visible()
    expect(page.get_by_text("enqueue", exact=True)).to_have_count(0)  # not the URL's last part
    page.wait_for_timeout(500)  # let the layout settle before the picture
    shot(page, "23-lineage-external-titles")

    page.goto(
        f"{dev_server.url}/assets/external/s3/{quote('s3 aikin-financial-reports › sec', safe='')}"
    )
    expect(page.get_by_text("s3 aikin-financial-reports › sec").first).to_be_visible()
    # the key holds no "/", so the page finds its neighbours (the satellite that lists it)
    expect(page.get_by_text("aikin__strucutred_pdfs / get_files_from_s3").first).to_be_visible()
    expect(page.get_by_text("External Asset").first).to_be_visible()
    shot(page, "24-asset-page-s3-prefix")


def test_the_sla_breach_job_says_what_it_is(page, dev_server):
    from playwright.sync_api import expect

    breach = f"{REFERENCE_JOB}__sla_breach"
    page.goto(f"{dev_server.url}/jobs")
    link = page.get_by_role("link", name=f"job {breach} info", exact=True)
    info = link.get_by_role("img", name="info")  # the (i) beside the name: hover shows the text
    info.hover()
    tooltip = page.get_by_role("tooltip")
    expect(
        tooltip.get_by_text(re.compile("^SLA-breach alert of cluster aikin/strucutred-pdfs"))
    ).to_be_visible()
    shot(page, "25-jobs-list-sla-breach-description")
    page.goto(job_url(dev_server, breach))
    expect(
        page.get_by_text(re.compile(r"Started by the exosphere__sla_breach sensor")).first
    ).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"Reads the inputs and per-item checkpoints")).first
    ).to_be_visible()
    shot(page, "26-sla-breach-job-description")


DELIVERIES_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: uitest/deliveries
  sla: 6h
  trigger: api-call
  retries: 0
  satellites:
    - uses: satellite/uitest/split
      identifier: split
      config: {{count: 3}}
    - uses: satellite/uitest/flaky
      identifier: flaky
      config: {{refuse: 1, while_file: "{cause}"}}
    - uses: satellite/exospherehost/call-webhook
      identifier: deliver
      config:
        url: {url}/hook
        body: {{n: "${{{{ satellites.split.output.n }}}}"}}
"""


def test_good_items_are_delivered_and_from_failure_delivers_the_rest(
    page, dev_server, http_recorder, tmp_path
):
    """Issue 22 in the UI: 3 items, 1 failing, no failure branch. The first run delivers 2 to
    a local webhook and ends red naming the item, with its counts on the run and the Catalog;
    the run page's "Re-execute From failure" delivers exactly the third."""
    from playwright.sync_api import expect

    cause = tmp_path / "cause"
    cause.write_text("broken")
    text = DELIVERIES_CLUSTER.format(cause=cause, url=http_recorder.url)
    (dev_server.folder / "browser-deliveries.yml").write_text(text)
    wait_for(lambda: "uitest__deliveries" in dev_server.job_names(), 120, "the new cluster")

    def delivered() -> list[int]:
        return sorted(r.json["n"] for r in http_recorder.requests if r.path == "/hook")

    run_id = launch(dev_server, "uitest__deliveries", {})
    page.goto(f"{dev_server.url}/runs/{run_id}")

    assert (
        wait_for(lambda: run_page_status(page), timeout=150, what=f"run {run_id} finishing")
        == "Failure"
    )
    assert delivered() == [0, 2]  # the good items moved on in the first run
    expect(page.get_by_text("flaky[c00000]").first).to_be_visible()
    expect(page.get_by_text("failed_unhandled").first).to_be_visible()  # the summary ran
    page.get_by_placeholder("Filter").first.fill("not acceptable")
    expect(page.get_by_text(re.compile(r"item input\.0\.1~[0-9a-f]{12}")).first).to_be_visible()
    shot(page, "11-good-items-delivered-red-step-names-the-item")

    goto_until(
        page,
        f"{dev_server.url}/assets/uitest__deliveries/flaky",
        lambda: page.get_by_text("unhandled").first,
        timeout=60,
    )
    shot(page, "12-catalog-counts-the-failure")

    cause.unlink()
    page.goto(f"{dev_server.url}/runs/{run_id}")
    page.get_by_role("button", name="Re-execute all (*)").wait_for()
    page.get_by_role("button", name="arrow_drop_down", exact=True).first.click()
    page.get_by_text("From failure", exact=True).first.click()
    page.wait_for_url(lambda url: run_id not in url and "/runs/" in url, timeout=60_000)
    again = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert (
        wait_for(lambda: run_page_status(page), timeout=150, what=f"re-execution {again} finishing")
        == "Success"
    )
    shot(page, "13-from-failure-succeeded")
    assert delivered() == [0, 1, 2]  # exactly one more, none twice


def test_an_op_says_what_its_satellite_does_and_what_its_chunk_steps_are(page, dev_server):
    """Issue 21: the satellite's docstring and its config model's, the full identifier, the
    chunk key explained, and named types instead of ``Any``."""
    from playwright.sync_api import expect

    page.goto(job_url(dev_server, "uitest__picky"))
    page.get_by_text("picky", exact=True).first.click()
    expect(page.get_by_text(re.compile(r"^Fail the item whose")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"Which item the satellite refuses")).first).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"over chunk c00000, the first chunk")).first
    ).to_be_visible()
    expect(page.get_by_text("ExosphereChunk", exact=True).first).to_be_visible()
    expect(page.get_by_text("ExosphereChunkReports", exact=True).first).to_be_visible()
    shot(page, "27-op-description-and-types")

    page.goto(job_url(dev_server, REFERENCE_JOB))
    expect(page.get_by_text("exosphere__summary", exact=True).first).to_be_visible()
    page.wait_for_timeout(500)  # let the layout settle before the picture
    shot(page, "28-reference-graph-one-summary-edge-per-segment-end")


def test_the_launchpad_takes_the_files_spelling(page, dev_server):
    """The picky cluster writes ``refuse_n`` (its model's alias is ``refuse-n``): the Launchpad
    shows and accepts the file's spelling."""
    from playwright.sync_api import expect

    page.goto(job_url(dev_server, "uitest__picky", "/playground"))
    page.locator(".CodeMirror").first.wait_for()
    scaffold = scaffold_config(page, "picky")
    assert re.search(r"picky:\s+config:\s+refuse_n: 1", scaffold), scaffold
    assert "refuse-n" not in scaffold
    page.get_by_role("dialog").wait_for(state="detached")
    typed = "ops:\n  picky:\n    config:\n      refuse_n: 2\n"
    page.evaluate(
        "config => document.querySelector('.CodeMirror').CodeMirror.setValue(config)", typed
    )
    expect(page.get_by_text("No errors").first).to_be_visible()
    shot(page, "31-launchpad-takes-the-files-spelling")
