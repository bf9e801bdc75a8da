"""Whatever a cluster file is mutated into, the loader answers with a plan or ConfigErrors.

Mutations start from the valid files in examples/ (and a small hand-written one): delete,
duplicate or swap lines, change a line's indentation, replace a character, insert a token that
means something to YAML or to the template language, truncate; or, on well-formed YAML, replace
or delete values anywhere in the data. No other exception may escape load + plan, and every
error must carry a position inside the file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load_text, plan

ROOT = Path(__file__).resolve().parents[2]
SMALL = """\
version: 0.0.1b
cluster:
  identifier: cluster/tests/small
  sla: 12h
  trigger:
    cron: "*/5 * * * *"
    timezone: Europe/Berlin
  retries: 2
  delay: 5s
  secrets:
    TOKEN: env:TOKEN
  satellites:
    - uses: satellite/exospherehost/get-files-from-s3
      identifier: files
      config: {bucket: my-bucket, prefix: in/, recursive: false}
    - uses: satellite/exospherehost/call-webhook
      identifier: notify
      parents: [files]
      delay: 2m
      config:
        url: https://example.com/${{ satellites.files.output.file-name }}
        headers:
          - Authorization: Bearer ${{ secrets.TOKEN }}
        body: ${{ satellites.files.output }}
  failure:
    from: notify
    satellites:
      - uses: satellite/exospherehost/call-webhook
        identifier: report
        config:
          url: https://example.com/failed
          body: {error: "${{ failure.error }}", file: "$${{ satellites.files.output.uri }}"}
"""
SOURCES = [
    (ROOT / "examples" / "structured-pdfs-fixed.yml").read_text(),
    (ROOT / "examples" / "structured-pdfs.yml").read_text(),
    SMALL,
]
TOKENS = ["${{", "$${{", "}}", ": ", "- ", "&a ", "*a", "[", "]", "{", "}", "'", '"', "|", ">",
          "\t", "#", "!!python/object:os.system", "<<: *a", "---", "...", "%YAML 1.1", "\\",
          "${{ secrets.X }}", "${{ satellites.call-webhook.output }}", "${{ failure.error }}",
          "\x00", "\ufeff", "\u2028", "é"]  # fmt: skip
REGISTRY = default_registry()


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SOURCES)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["delete", "duplicate", "swap", "indent", "replace", "insert", "truncate"]
            )
        )
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], line
        elif kind == "indent":
            stripped = line.lstrip(" ")
            lines[i] = " " * draw(st.integers(0, 24)) + stripped
        elif kind == "replace" and line:
            at = draw(st.integers(0, len(line) - 1))
            char = draw(st.characters(codec="utf-8") | st.sampled_from(list(":-[]{}&*!|>'\"#$ ")))
            lines[i] = line[:at] + char + line[at + 1 :]
        elif kind == "insert":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.sampled_from(TOKENS)) + line[at:]
        elif kind == "truncate":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\n")
    return "\n".join(lines)


def check_outcome(text: str) -> None:
    """load + plan gives a plan, or ConfigErrors whose every error is located in the file."""
    try:
        plan(load_text(text, "mutated.yml"), REGISTRY)
    except ConfigErrors as exc:
        assert exc.errors
        line_count = len(text.splitlines())  # YAML also breaks lines at U+2028, U+0085...
        for error in exc.errors:
            assert error.file == "mutated.yml"
            assert 1 <= error.line <= line_count + 1, str(error)
            assert error.column >= 1, str(error)
            assert str(error).startswith(f"mutated.yml:{error.line}:{error.column}: ")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_files_give_a_plan_or_config_errors(text: str) -> None:
    check_outcome(text)


# -- the same promise for well-formed YAML whose data is wrong -------------------------------

DATA = [yaml.safe_load(text) for text in SOURCES]
WORDS = ["${{ satellites.files.output }}", "${{ secrets.TOKEN }}", "${{ failure.error }}",
         "$${{ run.id }}", "${{ satellites.get-files-from-s3.output.file-path }}", "6h", "files",
         "notify", "get-files-from-s3", "call-webhook", "parse-pdf-with-docling", "api-call",
         "satellite/exospherehost/call-webhook", "0 0 * * *", "UTC", "Europe", "env:X", ""]  # fmt: skip
KEYS = ["uses", "config", "identifier", "parents", "children", "from", "satellites", "cron",
        "s3", "folder", "bucket", "secrets", "retries", "delay", "input", "body"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**20)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    data = copy.deepcopy(draw(st.sampled_from(DATA)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_data())
def test_wrong_data_gives_a_plan_or_config_errors(text: str) -> None:
    check_outcome(text)


def test_the_unmutated_sources_load() -> None:
    for text in (SOURCES[0], SMALL):
        assert plan(load_text(text, "source.yml"), REGISTRY).nodes
