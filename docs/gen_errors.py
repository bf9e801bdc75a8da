"""The error catalogue: every kind of load error, each with the message the loader really gives.

Examples come from running the loader on the test fixtures (``tests/yaml_loader/fixtures/bad``,
one broken file per case) at build time, plus two folder-level cases built here; a fixture that
no rule below names still appears, under "Other". Runnable alone: ``python docs/gen_errors.py``.
"""

from __future__ import annotations

import fnmatch
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "yaml_loader" / "fixtures" / "bad"
CONTEXT_LINES = 2

# (title, what it means and how to fix it, fixture name patterns)
KINDS = (
    (
        "YAML syntax and document shape",
        "The file is not one YAML mapping: bad indentation or tabs, an unclosed quote or bracket, "
        "a repeated key, several documents, an empty file, or a document that expands beyond the "
        "loader's limits (anchors and aliases are capped). The position is the parser's.",
        ["syntax-*", "multi-document", "duplicate-key", "empty", "top-level-list", "billion-*"],
    ),
    (
        "Missing keys",
        "A required key is absent; the hint names where to add it.",
        ["missing-*"],
    ),
    (
        "Unknown keys",
        "Every level of the format and every satellite config is strict: a typo is an error "
        "(with a did-you-mean) rather than a silently ignored setting.",
        ["unknown-key-*", "config-unknown-key"],
    ),
    (
        "Wrong types",
        'Values are not converted behind your back: `retries: "3"` is a string, not a number.',
        ["type-*", "config-wrong-type", "negative-*"],
    ),
    (
        "Invalid values",
        "The type is right but the value is not: SLA tier, cron expression, timezone, duration, "
        "identifier forms, format version, one trigger only, `- NAME: value` entries.",
        [
            "bad-*",
            "malformed-uses",
            "unsupported-version",
            "two-triggers",
            "secrets-entry-*",
        ],
    ),
    (
        "Satellites and the graph",
        "`uses` must name a registered satellite; identifiers must be unique (also as Dagster op "
        "names, where `-` and `_` are the same); `parents`, `children` and `failure.from` must "
        "name satellites of the cluster; the graph must have no cycle.",
        [
            "unknown-uses",
            "duplicate-satellite-*",
            "identifier-*",
            "reserved-*",
            "parents-*",
            "children-*",
            "cycle*",
            "failure-from-*",
        ],
    ),
    (
        "Templates and references",
        "`${{ ... }}` expressions are parsed when the file loads: unknown roots, functions or "
        "fields, syntax errors, and references to a satellite that is not an ancestor of the one "
        "reading it (it would have no value for the item) are reported with their position inside "
        "the string.",
        [
            "template-*",
            "ref-*",
            "failure-reads-*",
            "main-reads-*",
            "failure-root-*",
            "logs-read-*",
        ],
    ),
    (
        "Resources",
        "`cpu` and `memory` are Kubernetes quantities (`500m`, `2`, `0.5`; `512Mi`, `2Gi`, `1G`, "
        "`1e9`), `gpu` a whole number of devices; one parser (`yaml_loader/quantities.py`) "
        "checks them here and gives placement and cost their numbers.",
        ["resources-*"],
    ),
    (
        "Secrets",
        "A template may only name secrets declared under `cluster.secrets`; the hint says how to "
        "declare one from the environment.",
        ["undeclared-secret*", "secret-*"],
    ),
)


def _excerpt(path: Path, line: int) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return ""
    start = max(line - 1 - CONTEXT_LINES, 0)
    end = min(line + CONTEXT_LINES, len(lines))
    width = len(str(end))
    return "\n".join(f"{n + 1:>{width}} | {lines[n]}" for n in range(start, end))


def fixture_entry(path: Path, registry) -> list[str]:
    from exosphere_dagster.resolve.catalog import load_catalog

    catalog = load_catalog([path], registry, log=False)
    errors = catalog.errors
    if not errors:
        return [f"`{path.name}` loads without errors.", ""]
    messages = "\n".join(str(e).replace(str(path), path.name) for e in errors)
    excerpt = _excerpt(path, errors[0].line)
    out = [f"**`{path.name}`**", ""]
    if excerpt:
        out += ["```yaml", excerpt, "```", ""]
    out += ["```text", messages, "```", ""]
    return out


def _folder_level(registry) -> list[str]:
    """Errors that need more than one file or a plugin: built on the fly."""
    from exosphere_dagster.resolve.catalog import load_catalog
    from satellite_ops.errors import RegistryError
    from satellite_ops.registry import SatelliteRegistry

    cluster = (
        "version: 0.0.1b\ncluster:\n  identifier: acme/reports\n  sla: 24h\n"
        "  trigger: api-call\n  satellites:\n"
        "    - uses: satellite/exospherehost/get-files-from-s3\n      config: {bucket: reports}\n"
    )
    out = [
        "## Folder and plugin errors",
        "",
        "Two files of one folder that define the same cluster: the second is reported and skipped.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("a-reports.yml", "b-reports-copy.yml"):
            (Path(tmp) / name).write_text(cluster)
        catalog = load_catalog([tmp], registry, log=False)
        text = "\n".join(str(e).replace(tmp + "/", "") for e in catalog.errors)
    out += ["```text", text, "```", ""]
    out += [
        "Two clusters whose names differ, but that would give Dagster one name twice once `/` is "
        "`__` and `-` is `_` (here a satellite `c--d` of `mix/a-b` and a satellite `d` of "
        "`mix/a_b__c` both make the op `mix__a_b__c__d`): the later file is refused, naming the "
        "other.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        first = cluster.replace("acme/reports", "mix/a-b").replace(
            "satellites:\n",
            "satellites:\n    - uses: satellite/exospherehost/get-files-from-s3\n      identifier: c--d\n      config: {bucket: reports}\n",
            1,
        )
        (Path(tmp) / "a.yml").write_text(first)
        second = cluster.replace("acme/reports", "mix/a_b__c").replace(
            "bucket: reports}", "bucket: reports}\n      identifier: d", 1
        )
        (Path(tmp) / "b.yml").write_text(second)
        catalog = load_catalog([tmp], registry, log=False)
        text = "\n".join(str(e).replace(tmp + "/", "") for e in catalog.errors)
    out += ["```text", text, "```", ""]
    try:
        SatelliteRegistry().load_plugins("acme_satellites_missing")
        text = "(no error)"
    except RegistryError as exc:
        text = str(exc)
    out += [
        "A satellite module named in `EXOSPHERE_SATELLITE_MODULES` (or an entry point) that "
        "cannot be imported is reported under `<satellite plugins>`: by `exosphere validate`, "
        "and in the code location as an `invalid__` job. The other plugins still load, and "
        "every cluster that does not use the broken module's satellites loads and runs; one "
        "that does fails to load with `unknown satellite`:",
        "",
        "```text",
        text,
        "```",
        "",
    ]
    return out


def error_catalogue(registry) -> str:
    fixtures = sorted(FIXTURES.glob("*.y*ml")) if FIXTURES.is_dir() else []
    if not fixtures:
        return "(The example fixtures under `tests/yaml_loader/fixtures/bad/` were not found.)\n"
    placed: set[Path] = set()
    out: list[str] = []
    for title, text, patterns in KINDS:
        members = [
            p
            for p in fixtures
            if p not in placed and any(fnmatch.fnmatch(p.stem, pat) for pat in patterns)
        ]
        if not members:
            continue
        placed.update(members)
        out += [f"## {title}", "", text, ""]
        for path in members:
            out += fixture_entry(path, registry)
    rest = [p for p in fixtures if p not in placed]
    if rest:
        out += ["## Other", ""]
        for path in rest:
            out += fixture_entry(path, registry)
    out += _folder_level(registry)
    return "\n".join(out)


if __name__ == "__main__":
    sys.path[:0] = [str(REPO / "src"), str(Path(__file__).parent)]
    from gen_reference import builtin_registry

    sys.stdout.write(error_catalogue(builtin_registry()) + "\n")
