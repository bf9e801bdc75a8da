"""``dg scaffold defs exosphere_dagster.ClusterComponent <path>``: a ``defs.yaml`` and a starter
cluster file that loads as written (``--json-params '{"inline": true}'`` writes the cluster
inside ``defs.yaml`` instead)."""

from __future__ import annotations

import re
from pathlib import Path

from dagster.components import Scaffolder, ScaffoldRequest
from pydantic import BaseModel, Field

CLUSTER_FILE = "cluster.yaml"
STARTER = """\
version: 0.0.1b
cluster:
  identifier: {identifier}
  title: {title}
  sla: 24h
  # api-call: launched by hand, from the Launchpad or by API; or a cron, an S3 prefix, a folder
  trigger: api-call
  satellites:
    # one step per satellite: `exosphere schema` lists them, docs/satellites/ describes them
    - identifier: notify
      uses: satellite/exospherehost/call-webhook
      config:
        url: https://example.com/hooks/{name}
        body:
          cluster: ${{{{ cluster.identifier }}}}
          run: ${{{{ run.id }}}}
"""


class ClusterScaffoldParams(BaseModel):
    inline: bool = Field(False, description="Write the cluster inside defs.yaml.")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_") or "cluster"


def starter_cluster(target: Path, project_root: Path | None) -> str:
    """The starter cluster for a component at ``target``: ``<project>/<folder name>``."""
    project = _slug(project_root.name) if project_root else "project"
    name = _slug(target.name)
    return STARTER.format(identifier=f"{project}/{name}", title=target.name, name=name)


def _indented(text: str, by: str) -> str:
    return "".join(by + line if line.strip() else line for line in text.splitlines(True))


class ClusterScaffolder(Scaffolder[ClusterScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[ClusterScaffoldParams]:
        return ClusterScaffoldParams

    def scaffold(self, request: ScaffoldRequest[ClusterScaffoldParams]) -> None:
        target = request.target_path
        target.mkdir(parents=True, exist_ok=True)
        cluster = starter_cluster(target, request.project_root)
        head = f"type: {request.type_name}\n\nattributes:\n"
        if request.params and request.params.inline:
            (target / "defs.yaml").write_text(head + _indented(cluster, "  "))
            return
        (target / CLUSTER_FILE).write_text(cluster)
        (target / "defs.yaml").write_text(head + f"  file: {CLUSTER_FILE}\n")
