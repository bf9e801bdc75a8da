"""What ``exosphere clusters`` asks a Dagster webserver, over its GraphQL API.

Launching a run and reloading the code location go through ``dagster_graphql``'s
``DagsterGraphQLClient`` (its own calls); the rest (the workspace, jobs with their last run,
runs, a run's event log) are plain GraphQL queries to the same endpoint, since that client has
no call for them. Errors come out as two types a shell can tell apart: ``Unreachable`` (no
answer: exit 3) and ``ApiError`` (an answer that refuses: exit 1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

STORE_RESOURCE = "exosphere_clusters_store"  # definitions.STORE_RESOURCE (no Dagster import here)
DEFAULT_URL = "http://127.0.0.1:3000"

RUN_FIELDS = "runId jobName status creationTime startTime endTime tags { key value }"
WORKSPACE = """{ workspaceOrError { __typename
  ... on Workspace { locationEntries { name locationOrLoadError { __typename
    ... on RepositoryLocation { repositories { name
      allTopLevelResourceDetails { name configuredValues { key value } } } }
    ... on PythonError { message } } } }
  ... on PythonError { message } } }"""
JOBS = """query Jobs($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) { __typename
    ... on Repository { jobs { name description tags { key value }
      metadataEntries { label ... on TextMetadataEntry { text } } } }
    ... on RepositoryNotFoundError { message }
    ... on PythonError { message } } }"""
RUNS = f"""query Runs($filter: RunsFilter!, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{ __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on InvalidPipelineRunsFilterError {{ message }}
    ... on PythonError {{ message }} }} }}"""
REPOSITORY_TAG = ".dagster/repository"  # what Dagster filters a job's runs by: repo@location
RECENT_RUNS = 500  # `list` reads the latest runs at once; older ones per job, only if needed
LAST_RUNS = f"""query LastRuns($selector: RepositorySelector!) {{
  repositoryOrError(repositorySelector: $selector) {{
    ... on Repository {{ jobs {{ name runs(limit: 1) {{ {RUN_FIELDS} }} }} }} }} }}"""
RUN = f"""query Run($id: ID!) {{ runOrError(runId: $id) {{ __typename
    ... on Run {{ {RUN_FIELDS} }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message }} }} }}"""
EVENTS = """query Events($id: ID!, $cursor: String) {
  logsForRun(runId: $id, afterCursor: $cursor, limit: 2000) { __typename
    ... on EventConnection { cursor hasMore events { __typename
      ... on MessageEvent { message level stepKey timestamp }
      ... on ExecutionStepOutputEvent { outputName
        metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
          ... on JsonMetadataEntry { jsonString } } } } }
    ... on RunNotFoundError { message }
    ... on PythonError { message } } }"""


class ApiError(Exception):
    """The webserver answered, and refused (not found, invalid config, a load error)."""


class Unreachable(ApiError):
    """The webserver did not answer at all."""


@dataclass(frozen=True)
class Location:
    name: str
    repository: str
    store_url: str

    @property
    def selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.name, "repositoryName": self.repository}

    @property
    def label(self) -> str:
        return f"{self.repository}@{self.name}"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job: str
    status: str
    created: float | None
    started: float | None
    ended: float | None
    tags: dict[str, str]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> RunInfo:
        return cls(
            raw["runId"],
            raw["jobName"],
            raw["status"],
            raw.get("creationTime"),
            raw.get("startTime"),
            raw.get("endTime"),
            {t["key"]: t["value"] for t in raw.get("tags", [])},
        )


@dataclass(frozen=True)
class JobInfo:
    name: str
    description: str
    tags: dict[str, str]
    metadata: dict[str, str]


def _endpoint(url: str) -> tuple[str, str | None, int | None, bool, str]:
    """The GraphQL endpoint of a webserver URL (``http://host:3000``, ``.../prefix``, or the
    ``/graphql`` endpoint itself), and its parts for ``DagsterGraphQLClient``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(f"--url {url!r} is not a webserver URL (want e.g. {DEFAULT_URL})")
    prefix = parts.path.rstrip("/").removesuffix("/graphql")
    base = f"{parts.scheme}://{parts.netloc}{prefix}"
    return f"{base}/graphql", parts.hostname, parts.port, parts.scheme == "https", prefix


class DagsterApi:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 60) -> None:
        self.url = url
        self.endpoint, self._host, self._port, self._https, self._prefix = _endpoint(url)
        self.timeout = timeout

    @functools.cached_property
    def client(self) -> Any:
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(
            self._host,
            port_number=self._port,
            use_https=self._https,
            path_prefix=self._prefix,
            timeout=int(self.timeout),
        )

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = httpx.post(
                self.endpoint,
                json={"query": text, "variables": variables or {}},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"no Dagster webserver answers at {self.url}: {exc}") from None
        if response.status_code != 200:
            raise ApiError(f"{self.endpoint} answered HTTP {response.status_code}")
        body = response.json()
        if body.get("errors"):
            raise ApiError("; ".join(e.get("message", str(e)) for e in body["errors"]))
        return body["data"]

    def _client_call(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        import requests
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return call(*args, **kwargs)
        except DagsterGraphQLClientError as exc:
            if isinstance(exc.__cause__, requests.ConnectionError):
                raise Unreachable(f"no Dagster webserver answers at {self.url}") from None
            kind, *rest = exc.args or ("error",)
            detail = rest[0] if rest else ""
            raise ApiError(f"{kind}: {detail}" if detail else str(kind)) from None

    # -- the code location ------------------------------------------------------------------
    def location(self, name: str | None = None) -> Location:
        """The code location that publishes a clusters store (``name`` when there are several)."""
        data = self.query(WORKSPACE)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            raise ApiError(data.get("message", data["__typename"]))
        found, broken = [], []
        for entry in data["locationEntries"]:
            loaded = entry.get("locationOrLoadError") or {}
            if name and entry["name"] != name:
                continue
            if loaded.get("__typename") == "PythonError":
                broken.append(f"{entry['name']}: {loaded['message'].strip()}")
            for repo in loaded.get("repositories", []):
                for resource in repo["allTopLevelResourceDetails"]:
                    if resource["name"] == STORE_RESOURCE:
                        values = {v["key"]: v["value"] for v in resource["configuredValues"]}
                        url = values.get("url", "").strip('"')
                        found.append(Location(entry["name"], repo["name"], url))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(loc.name for loc in found)
            raise ApiError(
                f"several code locations publish a clusters store ({names}): pick one with --location"
            )
        why = f" (failed to load: {'; '.join(broken)})" if broken else ""
        raise ApiError(
            f"no code location at {self.url} publishes a clusters store{why}: point --url at a "
            "webserver that serves exosphere_dagster.definitions"
        )

    def reload(self, location: Location) -> None:
        info = self._client_call(self.client.reload_repository_location, location.name)
        if info.status.value != "SUCCESS":
            raise ApiError(f"reloading {location.name} failed: {info.message}")

    def jobs(self, location: Location) -> list[JobInfo]:
        data = self.query(JOBS, {"selector": location.selector})["repositoryOrError"]
        if data["__typename"] != "Repository":
            raise ApiError(data.get("message", data["__typename"]))
        return [
            JobInfo(
                job["name"],
                job.get("description") or "",
                {t["key"]: t["value"] for t in job["tags"]},
                {m["label"]: m["text"] for m in job["metadataEntries"] if "text" in m},
            )
            for job in data["jobs"]
        ]

    # -- runs -------------------------------------------------------------------------------
    def runs(self, location: Location, job: str | None, limit: int) -> list[RunInfo]:
        """The latest runs of ``job`` (of every job when None) of the location, newest first."""
        run_filter: dict[str, Any] = {"tags": [{"key": REPOSITORY_TAG, "value": location.label}]}
        if job:
            run_filter["pipelineName"] = job
        data = self.query(RUNS, {"filter": run_filter, "limit": limit})["runsOrError"]
        if data["__typename"] != "Runs":
            raise ApiError(data.get("message", data["__typename"]))
        return [RunInfo.parse(r) for r in data["results"]]

    def last_runs(self, location: Location, jobs: list[str]) -> dict[str, RunInfo]:
        """Each job's latest run: one query for the location's latest runs, which settles every
        job when they are all the runs there are; otherwise each job's ``runs(limit: 1)``
        (a database query per job: ~2.5 ms each on SQLite here, 0.8 s for 300 clusters)."""
        recent = self.runs(location, None, RECENT_RUNS)
        latest: dict[str, RunInfo] = {}
        for run in recent:
            latest.setdefault(run.job, run)
        missing = {j for j in jobs if j not in latest}
        if len(recent) < RECENT_RUNS:
            return latest  # every run of the location was read: the others never ran
        data = self.query(LAST_RUNS, {"selector": location.selector})["repositoryOrError"]
        for job in data.get("jobs", []):
            if job["name"] in missing and job["runs"]:
                latest[job["name"]] = RunInfo.parse(job["runs"][0])
        return latest

    def run(self, run_id: str) -> RunInfo:
        data = self.query(RUN, {"id": run_id})["runOrError"]
        if data["__typename"] != "Run":
            raise ApiError(data.get("message", f"no run {run_id}"))
        return RunInfo.parse(data)

    def launch(
        self, location: Location, job: str, run_config: dict[str, Any], tags: dict[str, str]
    ) -> str:
        return self._client_call(
            self.client.submit_job_execution,
            job,
            repository_location_name=location.name,
            repository_name=location.repository,
            run_config=run_config,
            tags=tags,
        )

    def events(
        self, run_id: str, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None, bool]:
        """One page of a run's event log: (events, the cursor after them, whether more wait)."""
        data = self.query(EVENTS, {"id": run_id, "cursor": cursor})["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise ApiError(data.get("message", data["__typename"]))
        return data["events"], data["cursor"], data["hasMore"]
