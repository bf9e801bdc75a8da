"""ClusterComponent and ClusterFolderComponent loaded the way ``dg`` loads them
(``load_from_defs_folder`` on a scratch project): the same job, triggers, sensors and satellite
assets as the code location; located errors for a broken inline cluster; broken files of a
folder as ``invalid__`` jobs; the scaffolded starter loads as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import load_from_defs_folder
from dagster.components import ScaffoldRequest
from dg_project import TEST_SATELLITES, make_project

from clusters import cluster_from, dump, write_cluster
from exosphere_dagster.components import ClusterComponent
from exosphere_dagster.components.scaffold import ClusterScaffolder, ClusterScaffoldParams
from exosphere_dagster.definitions import build_definitions

CRON = {"cron": "0 3 * * *", "timezone": "UTC"}
COMPONENT = "type: exosphere_dagster.ClusterComponent\n\nattributes:\n"


@pytest.fixture
def project(tmp_path: Path, satellite_modules, monkeypatch) -> Path:
    satellite_modules("byo_satellites")
    monkeypatch.syspath_prepend(str(TEST_SATELLITES))
    defs, _package = make_project(tmp_path / "proj")
    monkeypatch.syspath_prepend(str(tmp_path / "proj" / "src"))
    return defs


def load_project(defs: Path):
    return load_from_defs_folder(path_within_project=defs)


def names(items) -> set[str]:
    return {item.name for item in items}


def add_component(defs: Path, where: str, attributes: str) -> Path:
    folder = defs / where
    folder.mkdir(parents=True)
    (folder / "defs.yaml").write_text(COMPONENT + attributes)
    return folder


def test_a_cluster_file_builds_what_the_code_location_builds(project: Path, tmp_path: Path):
    data = cluster_from("fan-out", identifier="acme/nightly", trigger=CRON)
    folder = add_component(project, "clusters/nightly", "  file: cluster.yml\n")
    write_cluster(folder, "cluster.yml", data)
    location = tmp_path / "location"
    location.mkdir()
    write_cluster(location, "nightly.yml", data)

    mine = load_project(project)
    theirs = build_definitions(location)

    assert names(mine.jobs) == names(theirs.jobs) == {"acme__nightly"}
    assert names(mine.schedules) == names(theirs.schedules)
    job = next(iter(mine.jobs))
    same = next(iter(theirs.jobs))
    assert job.graph.node_names() == same.graph.node_names()
    file_tag = "exosphere/cluster_file"  # the file's path: the only difference
    assert {**job.tags, file_tag: ""} == {**same.tags, file_tag: ""}
    satellites = {spec.key for spec in theirs.assets if spec.key.path[0] == "acme__nightly"}
    assert satellites and satellites == {spec.key for spec in mine.assets}
    assert names(mine.sensors) == {"exosphere__deadlines__acme__nightly"}


def test_two_cluster_components_merge(project: Path):
    for name in ("first", "second"):
        folder = add_component(project, f"clusters/{name}", "  file: cluster.yml\n")
        write_cluster(folder, "cluster.yml", cluster_from("fan-out", identifier=f"acme/{name}"))
    defs = load_project(project)
    assert names(defs.jobs) == {"acme__first", "acme__second"}
    assert len(list(defs.sensors)) == 2  # one deadline sensor each, under its own name


def test_an_inline_cluster_loads_and_its_errors_point_into_defs_yaml(project: Path):
    data = cluster_from("fan-out", identifier="acme/inline")
    text = "".join("  " + line + "\n" for line in dump(data).splitlines())
    folder = add_component(project, "inline", text)
    assert names(load_project(project).jobs) == {"acme__inline"}

    broken = text.replace("count: 1", "count: ${{ satellites.nowhere.output }}")
    (folder / "defs.yaml").write_text(COMPONENT + broken)
    line = (
        (COMPONENT + broken)
        .splitlines()
        .index(next(x for x in (COMPONENT + broken).splitlines() if "nowhere" in x))
    )
    with pytest.raises(Exception) as raised:
        load_project(project)
    message = "".join(str(e) for e in _chain(raised.value))
    assert f"{folder / 'defs.yaml'}:{line + 1}:" in message
    assert "attributes.cluster.satellites[0].config.count" in message
    assert "nowhere" in message


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def test_the_folder_form_shows_broken_files_as_invalid_jobs(project: Path, tmp_path: Path):
    clusters = tmp_path / "watched"
    clusters.mkdir()
    write_cluster(clusters, "good.yml", cluster_from("fan-out", identifier="acme/good"))
    write_cluster(clusters, "bad.yml", "version: 0.0.1b\ncluster: [\n")
    folder = project / "watched"
    folder.mkdir()
    (folder / "defs.yaml").write_text(
        f"type: exosphere_dagster.ClusterFolderComponent\nattributes:\n  path: {clusters}\n"
    )
    defs = load_project(project)
    assert names(defs.jobs) == {"acme__good", "invalid__bad"}
    invalid = next(j for j in defs.jobs if j.name == "invalid__bad")
    assert "bad.yml:3:" in invalid.description or "bad.yml:2:" in invalid.description


def test_a_folder_component_whose_path_is_no_store_shows_it_as_an_invalid_job(project: Path):
    """``path: "s3://"`` raised a bare StoreError out of dg."""
    folder = project / "nowhere"
    folder.mkdir()
    (folder / "defs.yaml").write_text(
        'type: exosphere_dagster.ClusterFolderComponent\nattributes:\n  path: "s3://"\n'
    )
    defs = load_project(project)
    [invalid] = [job for job in defs.jobs if job.name.startswith("invalid__")]
    assert "s3://:1:1: <document>: no bucket in 's3://'" in invalid.description


def test_a_cluster_component_whose_file_is_a_folder_says_so(project: Path):
    """It loaded every file of the folder, or, empty, nothing at all and no error."""
    folder = project / "shelf"
    (folder / "sub").mkdir(parents=True)
    (folder / "defs.yaml").write_text(COMPONENT + "  file: sub\n")
    with pytest.raises(Exception) as raised:
        load_project(project)
    message = "".join(str(e) for e in _chain(raised.value))
    assert "'file' names a folder" in message and "ClusterFolderComponent" in message


@pytest.mark.parametrize("inline", [False, True])
def test_the_scaffolded_starter_loads_as_written(tmp_path: Path, inline: bool):
    target = tmp_path / "my-project" / "defs" / "clusters" / "reports"
    request = ScaffoldRequest(
        type_name="exosphere_dagster.ClusterComponent",
        target_path=target,
        scaffold_format="yaml",
        project_root=tmp_path / "my-project",
        params=ClusterScaffoldParams(inline=inline),
    )
    ClusterScaffolder().scaffold(request)
    defs_yaml = (target / "defs.yaml").read_text()
    assert defs_yaml.startswith("type: exosphere_dagster.ClusterComponent")
    if inline:
        component = ClusterComponent(defs_yaml=str(target / "defs.yaml"), line=3)
        (cluster,) = component.plans()
    else:
        assert "file: cluster.yaml" in defs_yaml
        (cluster,) = ClusterComponent(file=target / "cluster.yaml").plans()
    assert cluster.identifier == "my-project/reports"


def test_the_package_exports_the_components():
    import exosphere_dagster

    assert exosphere_dagster.ClusterComponent is ClusterComponent
    assert "ClusterFolderComponent" in exosphere_dagster.__all__
