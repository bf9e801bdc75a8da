"""Clusters in Python: the reference cluster written in Python plans exactly like its YAML file,
round-trips through YAML both ways, and every error points at the Python line that wrote it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satellite_ops import Resources, default_registry
from yaml_loader import ClusterPlan, ConfigErrors, load, load_text, plan
from yaml_loader.errors import format_key_path
from yaml_loader.python.api import (
    Cluster,
    Failure,
    Logs,
    Satellite,
    Trigger,
    load_python_clusters,
    output,
    ref,
    secret,
)
from yaml_loader.source import read_yaml_file, read_yaml_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "reference_pipeline.py"
FIXED = ROOT / "examples" / "structured-pdfs-fixed.yml"
VERBATIM = ROOT / "examples" / "structured-pdfs.yml"
REGISTRY = default_registry()
HOOK = "satellite/exospherehost/call-webhook"
FILES = "satellite/exospherehost/get-files-from-s3"


def without_positions(result: ClusterPlan) -> tuple[ClusterPlan, list[str]]:
    """The plan with its file and node lines blanked, and its warnings without 'file:line: '."""

    def node(n: Any) -> Any:
        return dataclasses.replace(n, line=0, column=0)

    blank = dataclasses.replace(
        result,
        file="",
        nodes=tuple(map(node, result.nodes)),
        failure_nodes=tuple(map(node, result.failure_nodes)),
        log_nodes=tuple(map(node, result.log_nodes)),
    )
    return blank, [re.sub(r"^.*?:\d+: ", "", w) for w in result.warnings]


def line_of(path: Path, text: str, after: int = 0) -> int:
    """The 1-based number of the first line (after line ``after``) of ``path`` holding ``text``."""
    lines = path.read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if i >= after and text in line)


@pytest.fixture(scope="module")
def reference() -> Cluster:
    [cluster] = load_python_clusters(EXAMPLE)
    return cluster


# -- the reference cluster ------------------------------------------------------------------
def test_the_python_reference_plans_exactly_like_the_yaml_file(reference: Cluster) -> None:
    from_python = reference.plan(REGISTRY)
    from_yaml = plan(load(FIXED), REGISTRY)
    assert without_positions(from_python) == without_positions(from_yaml)
    assert len(from_python.nodes) == 5 and from_python.failure_from == "parse-pdf-with-docling"
    # the positions that differ are the Python file's own
    assert from_python.file == str(EXAMPLE)
    assert from_python.node("get-files-from-s3").line == line_of(EXAMPLE, "files = Satellite(")
    assert from_python.node("send-pagerduty-alert").line == line_of(
        EXAMPLE, "pagerduty = Satellite("
    )
    secrets_line = line_of(EXAMPLE, '"AWS_ACCESS_KEY": "')
    assert from_python.warnings[0].startswith(f"{EXAMPLE}:{secrets_line}: secret 'AWS_ACCESS_KEY'")


def test_the_python_reference_round_trips_through_yaml(reference: Cluster) -> None:
    text = reference.to_yaml()
    assert Cluster.from_yaml(text) == reference
    assert without_positions(plan(load_text(text), REGISTRY)) == without_positions(
        plan(load(FIXED), REGISTRY)
    )


def test_yaml_to_python_to_yaml_keeps_the_data_and_its_key_order() -> None:
    cluster = Cluster.from_yaml(FIXED)
    text = cluster.to_yaml()
    original, _ = read_yaml_file(FIXED)
    again, _ = read_yaml_text(text, "again.yml")
    # equal data, and equal key order at every level (json-like dumps compare order)
    assert yaml.safe_dump(again, sort_keys=False) == yaml.safe_dump(original, sort_keys=False)
    assert "#" not in text  # comments are not kept (documented)
    assert without_positions(plan(load_text(text), REGISTRY)) == without_positions(
        plan(load(FIXED), REGISTRY)
    )
    assert Cluster.from_yaml(text) == cluster


def test_a_cluster_read_from_yaml_reports_errors_at_the_file_lines() -> None:
    with pytest.raises(ConfigErrors) as raised:
        Cluster.from_yaml(VERBATIM).plan(REGISTRY)
    found = {(e.file, e.line, format_key_path(e.key_path)) for e in raised.value.errors}
    assert found == {
        (str(VERBATIM), 139, "cluster.failure.satellites[1].config.pagerduty-api-key"),
        (str(VERBATIM), 140, "cluster.failure.satellites[1].config.pagerduty-service-id"),
    }


def test_the_verbatim_reference_in_python_names_the_python_lines(reference: Cluster) -> None:
    """Without the two PagerDuty secrets (as the README has it) the errors are the YAML's,
    pointed at the lines of the example that use them."""
    secrets = {k: v for k, v in reference.secrets.items() if not k.startswith("PAGERDUTY")}
    verbatim = dataclasses.replace(reference, secrets=secrets)
    with pytest.raises(ConfigErrors) as raised:
        verbatim.plan(REGISTRY)
    errors = raised.value.errors
    with pytest.raises(ConfigErrors) as from_file:
        plan(load(VERBATIM), REGISTRY)
    assert [(e.key_path, e.message, e.hint) for e in errors] == [
        (e.key_path, e.message, e.hint) for e in from_file.value.errors
    ]
    assert [(e.file, e.line) for e in errors] == [
        (str(EXAMPLE), line_of(EXAMPLE, 'secret("PAGERDUTY_API_KEY")')),
        (str(EXAMPLE), line_of(EXAMPLE, 'secret("PAGERDUTY_SERVICE_ID")')),
    ]
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_plan_and_validate_write_and_parse_no_yaml_text(
    reference: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The objects reach the loader as data: with every YAML dump and parse made to fail, plan()
    and validate() still work, and a bad value is still reported at the Python line."""
    loader = sys.modules["yaml_loader.load"]  # `yaml_loader.load` is also the function
    api = sys.modules["yaml_loader.python.api"]
    document = sys.modules["yaml_loader.python.document"]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("YAML text written or parsed inside plan()/validate()")

    expected = without_positions(reference.plan(REGISTRY))
    for module, name in [
        (yaml, "dump"),
        (yaml, "safe_dump"),
        (yaml, "compose"),
        (yaml, "safe_load"),
        (document, "dump"),
        (api, "load_text"),
        (api, "read_yaml_text"),
        (loader, "read_yaml_text"),
        (loader, "load_text"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    reference.validate()
    assert without_positions(reference.plan(REGISTRY)) == expected
    here = Path(__file__)
    bad = Cluster(
        identifier="tests/no-text",
        sla="6h",
        trigger="api-call",
        satellites=[
            Satellite(
                uses=HOOK,
                config={"url": "https://x", "n": float("nan")},  # <- nan
            )
        ],
    )
    for call in (bad.validate, lambda: bad.plan(REGISTRY)):
        with pytest.raises(ConfigErrors) as raised:
            call()
        [error] = raised.value.errors
        assert error.key_path == ("cluster", "satellites", 0, "config", "n")
        assert "not a finite number" in error.message
        assert (error.file, error.line) == (__file__, line_of(here, "# <- nan"))
    negative = Cluster(
        identifier="tests/no-text",
        sla="6h",
        trigger="api-call",
        retries=-1,  # <- a negative retry count
        satellites=[Satellite(uses=HOOK, config={"url": "https://x"})],
    )
    with pytest.raises(ConfigErrors) as raised:
        negative.plan(REGISTRY)
    [error] = raised.value.errors
    assert format_key_path(error.key_path) == "cluster.retries"
    assert (error.file, error.line) == (__file__, line_of(here, "# <- a negative retry count"))


# -- errors at the Python call site ----------------------------------------------------------
def test_errors_point_at_the_keyword_or_key_of_this_module() -> None:
    here = Path(__file__)
    files = Satellite(uses=FILES, identifier="files", config={"bucket": "my-bucket"})
    notify = Satellite(
        uses=HOOK,
        identifier="notify",
        config={
            "url": "https://example.com/hook",
            "method": 42,  # <- bad method
            "headers": [{"Authorization": f"Bearer {secret('TOKEN')}"}],  # <- undeclared
        },
        retries="3",  # <- bad retries
    )
    cluster = Cluster(
        identifier="tests/python-errors",
        sla="6h",
        trigger=Trigger(cron="0 0 * * *", timezone="Mars/Olympus"),  # <- bad timezone
        satellites=[files, notify],
    )
    with pytest.raises(ConfigErrors) as stage1:
        cluster.plan(REGISTRY)
    by_path = {format_key_path(e.key_path): e for e in stage1.value.errors}
    assert set(by_path) == {"cluster.trigger.timezone", "cluster.satellites[1].retries"}
    assert by_path["cluster.trigger.timezone"].line == line_of(here, "# <- bad timezone")
    assert by_path["cluster.satellites[1].retries"].line == line_of(here, "# <- bad retries")
    assert by_path["cluster.satellites[1].retries"].expected == "an integer"
    assert all(e.file == __file__ for e in stage1.value.errors)
    assert "Traceback" not in str(stage1.value)

    fixed = dataclasses.replace(
        cluster,
        trigger=Trigger(cron="0 0 * * *"),
        satellites=[files, dataclasses.replace(notify, retries=3)],  # <- replaced here
    )
    with pytest.raises(ConfigErrors) as stage2:
        fixed.plan(REGISTRY)
    by_path = {format_key_path(e.key_path): e for e in stage2.value.errors}
    method = by_path["cluster.satellites[1].config.method"]
    token = by_path["cluster.satellites[1].config.headers[0].Authorization"]
    # dataclasses.replace makes a new object: its site is the replace call
    assert method.line == token.line == line_of(here, "# <- replaced here")
    assert token.message == "secret 'TOKEN' is not declared in cluster.secrets"
    assert str(token).startswith(f"{__file__}:{token.line}:")


def test_resources_are_the_satellites_class_and_errors_point_into_its_call() -> None:
    """``Resources`` is ``satellite_ops.Resources`` (what satellites declare with); the loader's
    quantity parser checks it, and each error points at the keyword inside ``Resources(...)``."""
    here = Path(__file__)
    sat = Satellite(
        uses=FILES,
        config={"bucket": "my-bucket"},
        resources=Resources(
            cpu="lots",  # <- bad cpu
            gpu=1,
            node_selector={"pool": 7},  # <- bad selector
        ),
    )
    assert sat.resources == {"cpu": "lots", "gpu": 1, "node-selector": {"pool": 7}}
    cluster = Cluster(identifier="tests/python-resources", sla="6h", trigger="api-call",
                      satellites=[sat])  # fmt: skip
    with pytest.raises(ConfigErrors) as caught:
        cluster.validate()
    by_path = {format_key_path(e.key_path): e for e in caught.value.errors}
    cpu = by_path["cluster.satellites[0].resources.cpu"]
    assert (cpu.file, cpu.line) == (__file__, line_of(here, "# <- bad cpu"))
    assert "'lots' is not a Kubernetes quantity" in cpu.message
    selector = by_path["cluster.satellites[0].resources.node-selector.pool"]
    assert selector.line == line_of(here, "# <- bad selector")

    same = Satellite(uses=FILES, config={"bucket": "my-bucket"}, resources={"cpu": "lots"})
    assert same.resources == {"cpu": "lots"}
    good = dataclasses.replace(sat, resources=Resources(cpu="500m", gpu=1))
    fixed = dataclasses.replace(cluster, satellites=[good])
    [node] = fixed.plan(REGISTRY).nodes
    assert node.resources is not None and (node.resources.cpu, node.resources.gpu) == ("500m", 1)


def test_a_literal_satellite_points_at_its_config_key() -> None:
    here = Path(__file__)
    cluster = Cluster(
        identifier="tests/literal",
        sla="12h",
        trigger="api-call",
        satellites=[
            Satellite(
                uses=HOOK,
                config={
                    "url": "https://example.com",
                    "method": "FETCH",  # <- not a method
                },
            )
        ],
    )
    with pytest.raises(ConfigErrors) as raised:
        cluster.plan(REGISTRY)
    [error] = raised.value.errors
    assert format_key_path(error.key_path) == "cluster.satellites[0].config.method"
    assert (error.file, error.line) == (__file__, line_of(here, "# <- not a method"))


def test_duplicate_identifiers_name_the_other_python_line() -> None:
    here = Path(__file__)
    first = Satellite(uses=HOOK, config={"url": "https://a.example"})  # <- first hook
    second = Satellite(uses=HOOK, config={"url": "https://b.example"})  # <- second hook
    cluster = Cluster(
        identifier="tests/dup", sla="6h", trigger="api-call", satellites=[first, second]
    )
    with pytest.raises(ConfigErrors) as raised:
        cluster.plan(REGISTRY)
    [error] = raised.value.errors
    assert error.line == line_of(here, "# <- second hook")
    assert error.found == f"also used at {__file__}:{line_of(here, '# <- first hook')}"


def test_a_value_yaml_cannot_hold_is_a_located_error() -> None:
    here = Path(__file__)
    cluster = Cluster(
        identifier="tests/dates",
        sla="6h",
        trigger="api-call",
        satellites=[
            Satellite(
                uses=HOOK,
                config={
                    "url": "https://example.com",
                    "body": {"day": datetime.date(2026, 1, 2)},  # <- a date
                },
            )
        ],
        tags={1: "one"},  # <- an int key
    )
    with pytest.raises(ConfigErrors) as raised:
        cluster.to_yaml()
    by_path = {format_key_path(e.key_path): e for e in raised.value.errors}
    day, key = by_path["cluster.satellites[0].config.body.day"], by_path["cluster.tags"]
    assert (day.file, day.line) == (__file__, line_of(here, "# <- a date"))
    assert day.found == "a datetime.date"
    assert day.hint
    assert key.message == "mapping keys must be strings"
    assert key.line == line_of(here, "# <- an int key")


# -- template helpers ------------------------------------------------------------------------
def test_helpers_write_the_template_text() -> None:
    files = Satellite(uses=FILES, identifier="files", config={"bucket": "my-bucket"})
    assert str(secret("TOKEN")) == "${{ secrets.TOKEN }}"
    assert str(files.output) == "${{ satellites.files.output }}"
    assert str(files.output["file-path"]) == "${{ satellites.files.output.file-path }}"
    assert str(output("files", "pages", 0)) == "${{ satellites.files.output.pages[0] }}"
    assert str(output(files, "a b")) == "${{ satellites.files.output['a b'] }}"
    assert f"Bearer {secret('T')}" == "Bearer ${{ secrets.T }}"
    assert "s3://" + files.output["key"] == "s3://${{ satellites.files.output.key }}"
    assert str(ref("cluster.identifier")) == "${{ cluster.identifier }}"


def test_helpers_plan_like_the_strings_they_stand_for() -> None:
    files = Satellite(uses=FILES, identifier="files", config={"bucket": "my-bucket"})
    sort = Satellite(uses=FILES, identifier="sort", config={"bucket": "other-bucket"})

    def hook(url: Any, token: Any, parents: Any = None) -> Satellite:
        return Satellite(
            uses=HOOK,
            identifier="notify",
            parents=parents,
            config={"url": url, "headers": [{"Authorization": token}]},
        )

    def cluster(notify: Satellite) -> Cluster:
        return Cluster(
            identifier="tests/helpers",
            sla="24h",
            trigger=Trigger(cron="@daily"),
            secrets={"TOKEN": "env:TOKEN"},
            satellites=[files, sort, notify],
        )

    typed = hook(f"https://x/{files.output['file-path']}", secret("TOKEN"), parents=[files])
    text = hook(
        "https://x/${{ satellites.files.output.file-path }}", "${{ secrets.TOKEN }}", ["files"]
    )
    assert typed == text
    planned = cluster(typed).plan(REGISTRY)
    assert planned.node("notify").parents == ("files",)
    assert planned.node("notify").secrets == {"TOKEN"}
    assert without_positions(planned) == without_positions(cluster(text).plan(REGISTRY))


def test_a_reference_to_a_satellite_that_is_not_an_ancestor_is_located() -> None:
    here = Path(__file__)
    late = Satellite(uses=FILES, identifier="late", config={"bucket": "my-bucket"})
    early = Satellite(
        uses=HOOK,
        config={"url": "https://x", "body": {"file": late.output["key"]}},  # <- not an ancestor
    )
    with pytest.raises(ConfigErrors) as raised:
        Cluster(identifier="t/t", sla="6h", trigger="api-call", satellites=[early, late]).plan(
            REGISTRY
        )
    assert [e.line for e in raised.value.errors] == [line_of(here, "# <- not an ancestor")]


# -- lossless round trips --------------------------------------------------------------------
def test_every_typed_field_round_trips() -> None:
    cluster = Cluster(
        identifier="cluster/tests/everything",
        sla="12h",
        trigger=Trigger(cron="*/5 * * * *", timezone="Europe/Berlin"),
        title="All",
        description="Every key",
        retries=2,
        delay="5s",
        secrets=[{"TOKEN": "env:TOKEN"}],
        tags={"team": "data"},
        satellites=[
            Satellite(
                name="Files",
                uses=FILES,
                identifier="files",
                description="list",
                config={"bucket": "my-bucket"},
                retries=0,
                delay=1.5,
                timeout="2m",
                concurrency=4,
                resources=Resources(cpu="500m", memory="1Gi", gpu=1, node_selector={"a": "b"}),
            ),
            Satellite(
                uses=HOOK,
                identifier="notify",
                parents=["files"],
                config={"url": "https://x", "headers": [{"Authorization": secret("TOKEN")}]},
                input={"file": output("files")},
            ),
        ],
        failure=Failure(
            from_="files", satellites=[Satellite(uses=HOOK, config={"url": "https://f"})]
        ),
    )
    text = cluster.to_yaml()
    again = Cluster.from_yaml(text)
    assert again == cluster
    assert again.to_yaml() == text
    cluster.plan(REGISTRY)  # and it is a valid cluster


@pytest.mark.parametrize(
    "trigger",
    ["trigger: api-call", "trigger: {api-call: }", "trigger: {api-call: {}}", "trigger: {s3: {bucket: in, interval: 10s}}", "trigger: {folder: {path: /tmp/in, pattern: '*.pdf'}}"],
)  # fmt: skip
def test_every_trigger_spelling_plans_the_same_after_a_round_trip(trigger: str) -> None:
    text = (
        "version: 0.0.1b\ncluster:\n  identifier: t/t\n  sla: 6h\n"
        f"  {trigger}\n  satellites:\n    - uses: {HOOK}\n      config: {{url: 'https://x'}}\n"
    )
    again = Cluster.from_yaml(text).to_yaml()
    assert without_positions(plan(load_text(again), REGISTRY)) == without_positions(
        plan(load_text(text), REGISTRY)
    )


def test_from_yaml_reports_format_errors_with_the_file_positions(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("version: 0.0.1b\ncluster:\n  identifier: t/t\n  sla: 7h\n")
    with pytest.raises(ConfigErrors) as raised:
        Cluster.from_yaml(path)
    assert {(e.file, format_key_path(e.key_path)) for e in raised.value.errors} >= {
        (str(path), "cluster.sla")
    }


def test_from_yaml_takes_text_a_path_or_a_file_name(tmp_path: Path) -> None:
    text = FIXED.read_text()
    named = tmp_path / "cluster.txt"
    named.write_text(text)
    one_line = json.dumps(read_yaml_file(FIXED)[0])  # JSON is YAML
    assert "\n" not in one_line and len(one_line) > 4096  # longer than a file name may be
    clusters = [Cluster.from_yaml(src) for src in (text, FIXED, str(FIXED), str(named), one_line)]
    assert all(c == clusters[0] for c in clusters)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
    | st.sampled_from(
        [
            "yes",
            "~",
            "",
            "<<",
            "=",
            "2024-02-30",
            "1_000",
            "0x1F",
            " a\n b  \n",
            "\ufeff",
            "a\x85",
            "\u2028\n",
        ]
    )  # fmt: skip
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["<<", "yes", "1"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.dictionaries(st.text(max_size=10), _DATA, max_size=5), input=_DATA)
def test_any_json_like_value_round_trips(config: dict[str, Any], input: Any) -> None:
    sat = Satellite(uses=HOOK, config=config, input=input if isinstance(input, dict) else None)
    cluster = Cluster(identifier="t/t", sla="6h", trigger="api-call", satellites=[sat])
    assert Cluster.from_yaml(cluster.to_yaml()) == cluster


_ODD = st.sampled_from(
    [object(), {1, 2}, b"x", datetime.date(2020, 1, 1), float("nan"), -1, 10**30, "", [], {}, (1,)]
)
_ANY = _DATA | _ODD | st.sampled_from(["6h", "api-call", "cluster/a/b", "m", FILES])
_SATELLITE_KEYS = ["name", "uses", "identifier", "config", "input", "retries", "delay", "timeout"]
_CLUSTER_KEYS = ["identifier", "sla", "trigger", "title", "retries", "delay", "secrets", "tags"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sat=st.fixed_dictionaries({}, optional=dict.fromkeys(_SATELLITE_KEYS + ["parents"], _ANY)),
    top=st.fixed_dictionaries({}, optional=dict.fromkeys(_CLUSTER_KEYS, _ANY)),
    branch=st.sampled_from(["satellites", "failure", "logs"]),
)
def test_any_python_values_plan_or_fail_at_this_file(sat: dict, top: dict, branch: str) -> None:
    """Whatever is passed, plan() returns a plan or ConfigErrors located in this module."""
    main = Satellite(uses=HOOK, identifier="m", config={"url": "https://x"})
    odd = Satellite(**{"uses": HOOK, **sat})
    branches = {
        "satellites": {"satellites": [odd]},
        "failure": {"satellites": [main], "failure": Failure(from_="m", satellites=[odd])},
        "logs": {"satellites": [main], "logs": Logs(satellites=[odd])},
    }
    cluster = Cluster(
        **{"identifier": "t/t", "sla": "6h", "trigger": "api-call", **branches[branch], **top}
    )
    try:
        cluster.plan(REGISTRY)
    except ConfigErrors as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.file == __file__ and error.line > 1, str(error)


# -- load_python_clusters --------------------------------------------------------------------
TWO_CLUSTERS = """\
from yaml_loader import Cluster, Trigger
from steps import hook

first = Cluster(identifier="tests/first", sla="6h", trigger="api-call", satellites=[hook("a")])
more = [
    Cluster(
        identifier="tests/second",
        sla="24h",
        trigger=Trigger(cron="@daily"),
        satellites=[hook("b")],
    ),
]
same_as_first = first
"""
STEPS = f"""\
from yaml_loader import Satellite


def hook(name):
    return Satellite(uses="{HOOK}", identifier=name, config={{"url": "https://x/" + name}})
"""


def test_load_python_clusters_finds_every_cluster_in_order(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(STEPS)
    path = tmp_path / "clusters.py"
    path.write_text(TWO_CLUSTERS)
    modules, search_path = set(sys.modules), list(sys.path)
    clusters = load_python_clusters(path)
    assert [c.identifier for c in clusters] == ["tests/first", "tests/second"]
    assert [c.site.line for c in clusters] == [4, 6]
    for cluster in clusters:
        assert plan(load_text(cluster.to_yaml()), REGISTRY).nodes
    assert sys.path == search_path  # the file's folder was on sys.path only while it ran
    assert set(sys.modules) - modules <= {"steps"}
    sys.modules.pop("steps", None)
    again = load_python_clusters(path)  # a fresh import each time
    assert again == clusters and again[0] is not clusters[0]


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("import os\n\ndef f():\n    raise RuntimeError('no bucket')\n\nf()\n", 4, "RuntimeError: no bucket"),
        ("x = 1\ny = int('x')\n", 2, "ValueError: invalid literal"),
        ("import sys\nsys.exit(3)\n", 2, "SystemExit: 3"),
        ("import not_a_module_here\n", 1, "ModuleNotFoundError"),
        ("x = (\n", 1, "Python syntax error"),
    ],
)  # fmt: skip
def test_load_python_clusters_reports_a_failing_file_at_its_line(
    tmp_path: Path, source: str, line: int, message: str
) -> None:
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(ConfigErrors) as raised:
        load_python_clusters(path)
    [error] = raised.value.errors
    assert Path(error.file) == path
    assert error.line == line
    assert message in error.message
    assert "Traceback" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_load_python_clusters_rejects_a_missing_file_and_a_twice_defined_cluster(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigErrors, match="no such file"):
        load_python_clusters(tmp_path / "absent.py")
    path = tmp_path / "twice.py"
    path.write_text(
        "from yaml_loader import Cluster, Satellite\n"
        f"s = Satellite(uses='{HOOK}', config={{'url': 'https://x'}})\n"
        "a = Cluster(identifier='t/same', sla='6h', trigger='api-call', satellites=[s])\n"
        "b = Cluster(identifier='cluster/t/same', sla='6h', trigger='api-call', satellites=[s])\n"
    )
    with pytest.raises(ConfigErrors) as raised:
        load_python_clusters(path)
    [error] = raised.value.errors
    assert error.line == 4 and error.found == f"also defined at {path}:3"


def test_the_example_file_prints_yaml_that_exosphere_validate_accepts(tmp_path: Path) -> None:
    out = tmp_path / "reference.yml"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out.write_text(done.stdout)
    exosphere = Path(sys.executable).with_name("exosphere")
    result = subprocess.run(
        [str(exosphere), "validate", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"ok: {out} (aikin/strucutred-pdfs, 5 satellites)" in result.stdout


def test_exosphere_dagster_re_exports_the_python_api() -> None:
    import exosphere_dagster
    from yaml_loader.python import api as python_api

    for name in ("Cluster", "Satellite", "Trigger", "Failure", "Logs", "load_python_clusters"):
        assert getattr(exosphere_dagster, name) is getattr(python_api, name)
        assert name in exosphere_dagster.__all__
    assert exosphere_dagster.Resources is Resources  # satellite_ops's: one class for both
