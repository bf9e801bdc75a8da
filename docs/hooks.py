"""mkdocs hooks: the navigation, and the pages generated from the code.

* ``satellites/<name>.md`` for every built-in satellite (config table from its model); a
  hand-written page of that name keeps its text and gets the generated sections appended, or
  put where it writes ``<!-- exosphere:satellite-config -->``;
* markers replaced in hand-written pages: ``<!-- exosphere:yaml-reference -->`` (the cluster
  format from ``yaml_loader.models``), ``<!-- exosphere:error-catalogue -->`` (the loader run on
  the bad fixtures), ``<!-- exosphere:satellite-index -->``;
* the nav lists the pages that exist, so pages other people add or remove (deployment.md,
  sla.md, satellites/*.md) never break ``mkdocs build --strict``; any page the nav does not
  name is listed under "More".
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import gen_errors  # noqa: E402
import gen_reference  # noqa: E402

MARK_YAML = "<!-- exosphere:yaml-reference -->"
MARK_ERRORS = "<!-- exosphere:error-catalogue -->"
MARK_INDEX = "<!-- exosphere:satellite-index -->"
MARK_CONFIG = "<!-- exosphere:satellite-config -->"

NAV = [
    ("Home", "index.md"),
    ("Getting started", "getting-started.md"),
    ("Concepts", "concepts.md"),
    (
        "Guides",
        [
            ("Writing your own satellite", "writing-satellites.md"),
            ("Clusters in Python", "python-api.md"),
            ("The cluster API", "cluster-api.md"),
            ("Triggers and launching by API", "triggers.md"),
            ("SLA tiers and placement", "sla.md"),
            ("What a run costs", "cost.md"),
            ("Deployment", "deployment.md"),
            ("Using with dg", "using-with-dg.md"),
            ("Coming from Argo, Kestra or dag-factory", "coming-from.md"),
        ],
    ),
    (
        "Reference",
        [
            ("Cluster file format", "reference/cluster-format.md"),
            ("Error catalogue", "reference/errors.md"),
            ("How a cluster runs", "runtime.md"),
            ("Architecture", "architecture.md"),
            ("Design decisions", "decisions.md"),
        ],
    ),
    ("Satellites", "SATELLITES"),
]

_state: dict = {}


def _registry():
    if "registry" not in _state:
        _state["registry"] = gen_reference.builtin_registry()
    return _state["registry"]


def _satellite_pages() -> dict[str, object]:
    """``satellites/<name>.md`` -> the satellite definition, for every built-in satellite."""
    registry = _registry()
    return {
        f"satellites/{gen_reference.page_name(i)}.md": registry.get(i)
        for i in registry.identifiers()
    }


def _exists(docs_dir: Path, uri: str, generated: set[str]) -> bool:
    return uri in generated or (docs_dir / uri).is_file()


def on_config(config, **kwargs):
    docs_dir = Path(config["docs_dir"])
    satellites = _satellite_pages()
    generated = {*satellites, "satellites/index.md"}
    named: set[str] = set()

    def entries(items):
        out = []
        for title, target in items:
            if target == "SATELLITES":
                pages = [{"All satellites": "satellites/index.md"}]
                handwritten = sorted(
                    p.relative_to(docs_dir).as_posix()
                    for p in (docs_dir / "satellites").glob("*.md")
                    if p.name != "index.md"
                )
                for uri in sorted(set(satellites) | set(handwritten)):
                    pages.append({Path(uri).stem: uri})
                named.update(next(iter(p.values())) for p in pages)
                out.append({title: pages})
            elif isinstance(target, list):
                children = entries(target)
                if children:
                    out.append({title: children})
            elif _exists(docs_dir, target, generated):
                named.add(target)
                out.append({title: target})
        return out

    nav = entries(NAV)
    more = sorted(
        p.relative_to(docs_dir).as_posix()
        for p in docs_dir.rglob("*.md")
        if p.relative_to(docs_dir).as_posix() not in named
    )
    if more:
        nav.append({"More": [{_title(docs_dir / uri): uri} for uri in more]})
    config["nav"] = nav
    return config


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def on_files(files, config, **kwargs):
    _state["generated"] = generated = set()
    for uri, definition in _satellite_pages().items():
        if files.get_file_from_path(uri) is None:
            generated.add(uri)
            files.append(
                File.generated(config, uri, content=gen_reference.satellite_page(definition))
            )
    if files.get_file_from_path("satellites/index.md") is None:
        content = (
            "# Satellites\n\nThe satellites that ship with exosphere-dagster. Each page's "
            "configuration table is generated from the satellite's config model. To add your "
            "own, see [Writing your own satellite](../writing-satellites.md).\n\n"
            f"{MARK_INDEX}\n"
        )
        files.append(File.generated(config, "satellites/index.md", content=content))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    uri = page.file.src_uri
    if MARK_YAML in markdown:
        markdown = markdown.replace(MARK_YAML, gen_reference.yaml_reference())
    if MARK_ERRORS in markdown:
        markdown = markdown.replace(MARK_ERRORS, gen_errors.error_catalogue(_registry()))
    if MARK_INDEX in markdown:
        markdown = markdown.replace(MARK_INDEX, gen_reference.satellite_index(_registry()))
    definition = _satellite_pages().get(uri)
    if definition is not None and uri not in _state.get("generated", ()):
        sections = gen_reference.satellite_sections(definition)
        if MARK_CONFIG in markdown:
            markdown = markdown.replace(MARK_CONFIG, sections)
        else:
            markdown = f"{markdown.rstrip()}\n\n## Reference (generated)\n\n{sections}"
    return markdown
