"""Stage 1: a cluster file becomes a validated ClusterSpec that still knows its source positions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from yaml_loader.errors import ConfigError, ConfigErrors
from yaml_loader.models import ClusterFile, ClusterSpec
from yaml_loader.source import SourceMap, read_yaml_file, read_yaml_text
from yaml_loader.validation import translate

YAML_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class LoadedCluster:
    """A cluster file that passed the format checks (stage 1 of 2)."""

    spec: ClusterSpec
    version: str
    source: SourceMap

    @property
    def file(self) -> str:
        return self.source.file


def load_text(text: str, file: str = "<string>") -> LoadedCluster:
    data, source = read_yaml_text(text, file)
    return load_document(data, source)


def load(path: str | Path) -> LoadedCluster:
    """Read and validate one cluster file; raise ConfigErrors listing every problem found."""
    data, source = read_yaml_file(path)
    return load_document(data, source)


def load_document(data: object, source: SourceMap) -> LoadedCluster:
    """Validate a cluster file's data (what a YAML reader returned, or the Python API built)
    with its source map; raise ConfigErrors located through ``source``."""
    if not isinstance(data, dict):
        raise ConfigErrors(
            [
                source.error(
                    (),
                    "a cluster file must be a mapping",
                    expected="keys 'version' and 'cluster'",
                    found=type(data).__name__,
                )
            ]
        )
    try:
        parsed = ClusterFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors(translate(exc, ClusterFile, source)) from None
    return LoadedCluster(spec=parsed.cluster, version=parsed.version, source=source)


def find_cluster_files(paths: list[str | Path] | tuple[str | Path, ...]) -> list[Path]:
    """Expand folders to the YAML files under them (sorted), keep files as given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(cluster_files_under(path))
        else:
            found.append(path)
    return found


def utf8_name(path: Path) -> bool:
    """Whether the path is valid UTF-8 text (undecodable bytes are kept by Python as
    surrogates, which no UTF-8 store of names, Dagster's included, takes)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cluster_files_under(folder: Path) -> list[Path]:
    """The YAML files under ``folder``, sorted. Hidden files and folders (a name that starts
    with ``.``) are not read: ``.git``, an editor's backups, and a Kubernetes ConfigMap mount,
    which keeps every file twice, in ``..<timestamp>/`` behind its ``..data`` link and as a
    link beside it."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix in YAML_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def missing_file_error(path: Path) -> ConfigError:
    return ConfigError(str(path), 1, 1, (), "no such file or folder", hint="check the path")
