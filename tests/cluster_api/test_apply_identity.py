"""Which stored or served cluster a new one would replace (no server: the jobs are as the
webserver's GraphQL answers them, the stored bytes as a store returns them)."""

from __future__ import annotations

from pathlib import Path

from clusters import cluster, dump, satellite_entry
from exosphere_dagster.entry.clusters.apply import (
    Change,
    clashes,
    held_jobs,
    stored_identifier,
    validate,
)
from exosphere_dagster.entry.clusters.graphql import JobInfo

WEBHOOK = satellite_entry("satellite/exospherehost/call-webhook", config={"url": "https://e.com"})


def job(name: str, identifier: str | None, **tags: str) -> JobInfo:
    if identifier:
        tags["exosphere/cluster"] = identifier
    return JobInfo(name, "", tags, {"cluster file": f"/srv/{name}.yml"})


def validated(tmp_path: Path, identifier: str):
    path = tmp_path / "new.yml"
    path.write_text(dump(cluster(identifier, [WEBHOOK])))
    (found,), errors = validate([str(path)])
    assert not errors
    return found


def change(found, before: bytes | None) -> Change:
    return Change(found.identifier, found.job, "f.yml", "/srv/f.yml", before, found.data)


def test_a_job_name_held_by_another_identifier_is_a_clash(tmp_path) -> None:
    found = validated(tmp_path, "xx_yy/zz")
    held = held_jobs([job("xx_yy__zz", "xx-yy/zz")])
    (clash,) = clashes(found, change(found, None), held)
    assert "cluster 'xx_yy/zz'" in clash and "for cluster 'xx-yy/zz' (/srv/xx_yy__zz.yml)" in clash
    same = held_jobs([job("xx_yy__zz", "cluster/xx_yy/zz")])  # the same cluster, prefixed
    assert clashes(found, change(found, None), same) == []


def test_an_sla_breach_job_belongs_to_its_cluster(tmp_path) -> None:
    found = validated(tmp_path, "a/b__sla_breach")
    jobs = [job("a__b", "a/b"), job("a__b__sla_breach", None, **{"exosphere/role": "sla-breach"})]
    (clash,) = clashes(found, change(found, None), held_jobs(jobs))
    assert "job 'a__b__sla_breach', which the server already has for cluster 'a/b'" in clash
    assert clashes(found, change(found, None), held_jobs(jobs[:1])) == []  # no alert job


def test_a_stored_file_of_another_identifier_is_a_clash(tmp_path) -> None:
    found = validated(tmp_path, "aa__bb/cc")
    other = dump(cluster("aa/bb__cc", [WEBHOOK])).encode()
    (clash,) = clashes(found, change(found, other), {})
    assert clash.endswith("would be stored as /srv/f.yml, which holds cluster 'aa/bb__cc'")
    assert clashes(found, change(found, found.data), {}) == []
    assert stored_identifier(b"{not: [yaml", "x.yml") is None  # unreadable: no claim
    assert stored_identifier(b"&a [*a]", "x.yml") is None
