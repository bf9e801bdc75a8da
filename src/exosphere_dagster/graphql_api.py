"""Dagster's GraphQL API, as the cluster API uses it: find the exosphere code location and its
store, list jobs and runs, launch, reload, read a run's events.

Plain GraphQL over httpx rather than ``dagster_graphql.DagsterGraphQLClient``: the client
imports all of Dagster (about 1.3 s on every command here, against 0.1 s for httpx) and wraps
connection failures in the same exception as GraphQL errors, while a shell needs them apart
(``ServerUnreachable``, exit code 3). The mutations are the ones that client sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from exosphere_dagster.cluster_store import STORE_SENSOR

DEFAULT_URL = "http://127.0.0.1:3000"  # `exosphere dev`
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

METADATA = "metadataEntries { label ... on TextMetadataEntry { text } }"
LOCATIONS = f"""
query Locations {{
  workspaceOrError {{
    __typename
    ... on Workspace {{ locationEntries {{ name loadStatus
      locationOrLoadError {{ __typename
        ... on RepositoryLocation {{ repositories {{ name sensors {{ name {METADATA} }} }} }}
        ... on PythonError {{ message }} }} }} }}
    ... on PythonError {{ message }}
  }}
}}"""
RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } }
    ... on Error { message }
  }
}"""
RUN_FIELDS = "runId jobName status creationTime startTime endTime tags { key value }"
JOBS = f"""
query Jobs($selector: RepositorySelector!) {{
  repositoryOrError(repositorySelector: $selector) {{
    __typename
    ... on Repository {{ jobs {{ name description tags {{ key value }} {METADATA}
                                 runs(limit: 1) {{ {RUN_FIELDS} }} }} }}
    ... on Error {{ message }}
  }}
}}"""
RUNS = f"""
query Runs($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on Error {{ message }}
  }}
}}"""
RUN = f"""
query Run($runId: ID!) {{
  runOrError(runId: $runId) {{ __typename ... on Run {{ {RUN_FIELDS} }} ... on Error {{ message }} }}
}}"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}"""
EVENTS = """
query Events($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 2000) {
    __typename
    ... on EventConnection { cursor hasMore events { __typename
        ... on MessageEvent { message timestamp level stepKey }
        ... on ExecutionStepOutputEvent { outputName metadataEntries { label ... on TextMetadataEntry { text } } } } }
    ... on Error { message }
  }
}"""


class ApiError(Exception):
    """The server answered, with an error (GraphQL errors, a PythonError, not found...)."""


class ServerUnreachable(Exception):
    """No GraphQL answer at the URL: nothing listening, a timeout, or not a Dagster webserver."""


def entries(metadata: list[dict[str, Any]]) -> dict[str, str]:
    return {m["label"]: m["text"] for m in metadata if "text" in m}


def tags_of(obj: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in obj.get("tags") or []}


@dataclass
class Location:
    """The code location that serves the exosphere clusters, and the store it published."""

    name: str
    repository: str
    store: dict[str, str] = field(default_factory=dict)  # the store sensor's metadata

    @property
    def selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.name, "repositoryName": self.repository}


class DagsterApi:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/graphql"
        self._http = httpx.Client(timeout=timeout)

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.post(self.endpoint, json={"query": text, "variables": variables})
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"no Dagster webserver at {self.url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise ServerUnreachable(
                f"{self.endpoint} answered HTTP {response.status_code} without JSON: "
                "is this a Dagster webserver (exosphere dev, dagster-webserver)?"
            ) from None
        if body.get("errors"):
            raise ApiError("; ".join(e.get("message", str(e)) for e in body["errors"]))
        return body["data"]

    def locations(self) -> list[Location]:
        """Exosphere locations: those whose repository has the store sensor."""
        found, failed = [], []
        data = self.query(LOCATIONS)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            raise ApiError(data.get("message", data["__typename"]))
        for entry in data["locationEntries"]:
            loaded = entry.get("locationOrLoadError") or {}
            if loaded.get("__typename") == "PythonError":
                failed.append(f"{entry['name']}: {loaded['message'].strip()}")
            for repo in loaded.get("repositories", []):
                for sensor in repo["sensors"]:
                    if sensor["name"] == STORE_SENSOR:
                        store = entries(sensor["metadataEntries"])
                        found.append(Location(entry["name"], repo["name"], store))
        if not found and failed:
            raise ApiError("no exosphere code location loaded; failed: " + "; ".join(failed))
        return found

    def reload(self, location: str) -> None:
        result = self.query(RELOAD, {"name": location})["reloadRepositoryLocation"]
        loaded = result.get("locationOrLoadError") or {}
        if result["__typename"] != "WorkspaceLocationEntry":
            raise ApiError(f"reload of {location} refused: {result.get('message')}")
        if loaded.get("__typename") == "PythonError":
            raise ApiError(f"code location {location} failed to load: {loaded['message']}")

    def jobs(self, location: Location) -> list[dict[str, Any]]:
        data = self.query(JOBS, {"selector": location.selector})["repositoryOrError"]
        if data["__typename"] != "Repository":
            raise ApiError(data.get("message", data["__typename"]))
        return data["jobs"]

    def runs(self, job: str, limit: int) -> list[dict[str, Any]]:
        variables = {"filter": {"pipelineName": job}, "limit": limit}
        data = self.query(RUNS, variables)["runsOrError"]
        if data["__typename"] != "Runs":
            raise ApiError(data.get("message", data["__typename"]))
        return data["results"]

    def run(self, run_id: str) -> dict[str, Any] | None:
        data = self.query(RUN, {"runId": run_id})["runOrError"]
        if data["__typename"] == "RunNotFoundError":
            return None
        if data["__typename"] != "Run":
            raise ApiError(data.get("message", data["__typename"]))
        return data

    def launch(
        self, location: Location, job: str, run_config: dict[str, Any], tags: dict[str, str]
    ) -> str:
        params = {
            "selector": {**location.selector, "jobName": job},
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = self.query(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] == "LaunchRunSuccess":
            return result["run"]["runId"]
        if result["__typename"] == "RunConfigValidationInvalid":
            raise ApiError(
                "run config refused: " + "; ".join(e["message"] for e in result["errors"])
            )
        raise ApiError(f"{result['__typename']}: {result.get('message', '')}".strip())

    def events(self, run_id: str, after: str | None) -> tuple[list[dict[str, Any]], str, bool]:
        """The run's events after the cursor: (events, next cursor, whether more are waiting)."""
        data = self.query(EVENTS, {"runId": run_id, "after": after})["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise ApiError(data.get("message", data["__typename"]))
        return data["events"], data["cursor"], data["hasMore"]
