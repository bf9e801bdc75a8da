"""Registry: declaring satellites, finding them, loading plugin modules."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pydantic import Field, RootModel

from satellite_ops import (
    BatchItem,
    DuplicateSatelliteError,
    Resources,
    SatelliteConfig,
    SatelliteDefinitionError,
    SatelliteImportError,
    SatelliteRegistry,
    UnknownSatelliteError,
    default_registry,
    satellite,
)
from satellite_ops.registry import DEFINITIONS_ATTR, MODULES_ENV_VAR, builtin_modules


class EchoConfig(SatelliteConfig):
    greeting: str = Field("hi", description="What to say.")


def test_decorator_registers_and_describes() -> None:
    registry = SatelliteRegistry()

    @satellite("satellite/tests/echo", config=EchoConfig, registry=registry)
    def echo(config, input):
        """Repeat the input.

        More words that are not part of the description.
        """
        return [dict(input)]

    definition = registry.get("satellite/tests/echo")
    assert definition.fn is echo
    assert definition.config_model is EchoConfig
    assert definition.description == "Repeat the input."
    assert not definition.is_async and not definition.accepts_context and not definition.batched
    assert definition.max_concurrency == 16
    assert definition.resources == Resources()
    assert "satellite/tests/echo" in registry
    assert registry.identifiers() == ["satellite/tests/echo"]
    assert getattr(echo, DEFINITIONS_ATTR) == (definition,)


def test_async_and_context_detection() -> None:
    registry = SatelliteRegistry()

    @satellite("satellite/tests/async-ctx", config=EchoConfig, registry=registry)
    async def with_context(config, input, context):
        return []

    @satellite("satellite/tests/kw-ctx", config=EchoConfig, registry=registry)
    def keyword_context(config, input, *, context=None):
        return []

    assert registry.get("satellite/tests/async-ctx").is_async
    assert registry.get("satellite/tests/async-ctx").accepts_context
    assert not registry.get("satellite/tests/kw-ctx").is_async
    assert registry.get("satellite/tests/kw-ctx").accepts_context


def test_batched_and_resources() -> None:
    registry = SatelliteRegistry()

    @satellite(
        "satellite/tests/batch",
        config=EchoConfig,
        batched=True,
        max_concurrency=1,
        resources=Resources(cpu="500m", memory="2Gi", gpu=1),
        registry=registry,
    )
    def batch(items: list[BatchItem]):
        return [[{"n": i}] for i, _ in enumerate(items)]

    definition = registry.get("satellite/tests/batch")
    assert definition.batched and definition.max_concurrency == 1
    assert definition.resources.gpu == 1 and definition.resources.memory == "2Gi"


@pytest.mark.parametrize(
    "identifier",
    [
        "tests/echo",
        "satellite/Tests/echo",
        "satellite/tests/echo/extra",
        "satellite/tests/a b",
        "satellite/tests/" + "a" * 101,  # it names a folder and Dagster steps
    ],
)
def test_bad_identifier(identifier: str) -> None:
    with pytest.raises(SatelliteDefinitionError, match="satellite/<project>/<name>"):
        satellite(identifier, config=EchoConfig, registry=SatelliteRegistry())(lambda c, i: [])


def test_bad_signature_and_model() -> None:
    registry = SatelliteRegistry()
    with pytest.raises(SatelliteDefinitionError, match="does not fit"):
        satellite("satellite/tests/one-arg", config=EchoConfig, registry=registry)(lambda c: [])
    with pytest.raises(SatelliteDefinitionError, match="does not fit"):
        satellite("satellite/tests/b", config=EchoConfig, batched=True, registry=registry)(
            lambda c, i: []
        )
    with pytest.raises(SatelliteDefinitionError, match="BaseModel subclass"):
        satellite("satellite/tests/no-model", config=dict, registry=registry)(lambda c, i: [])
    with pytest.raises(SatelliteDefinitionError, match="named fields, got the RootModel Counts"):

        class Counts(RootModel[dict[str, int]]):  # its run config could never be given
            pass

        satellite("satellite/tests/root", config=Counts, registry=registry)(lambda c, i: [])
    with pytest.raises(SatelliteDefinitionError, match=r"satellite_ops\.Resources\(cpu="):
        satellite(
            "satellite/tests/res", config=EchoConfig, resources={"gpu": 1}, registry=registry
        )(lambda c, i: [])


def test_declared_resources_are_kept_as_written_and_the_declaration_is_located() -> None:
    """The registry has no quantity parser of its own: the loader's one parser checks declared
    resources in the resolve stage, whose error names the declaration's ``source``."""
    registry = SatelliteRegistry()

    @satellite(
        "satellite/tests/hungry",
        config=EchoConfig,
        resources=Resources(memory="lots"),
        registry=registry,
    )
    def hungry(config, input):
        return []

    definition = registry.get("satellite/tests/hungry")
    assert definition.resources == Resources(memory="lots")
    assert definition.source == f"{__file__}:{hungry.__code__.co_firstlineno}"
    assert definition.source.endswith(f":{_line_above('@satellite(', 'hungry')}")


def _line_above(start: str, name: str) -> int:
    """The line of ``start`` just above ``def name`` in this file."""
    lines = Path(__file__).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"def {name}("))
    return next(i + 1 for i in range(at, -1, -1) if lines[i].strip().startswith(start))


def test_duplicates() -> None:
    registry = SatelliteRegistry()

    def first(config, input):
        return []

    def second(config, input):
        return []

    satellite("satellite/tests/dup", config=EchoConfig, registry=registry)(first)
    # Registering the same function again (e.g. the module imported twice) is fine.
    satellite("satellite/tests/dup", config=EchoConfig, registry=registry)(first)
    with pytest.raises(DuplicateSatelliteError, match="already registered by .*first"):
        satellite("satellite/tests/dup", config=EchoConfig, registry=registry)(second)


def test_unknown_with_did_you_mean() -> None:
    registry = default_registry()
    with pytest.raises(UnknownSatelliteError) as caught:
        registry.get("satellite/exospherehost/get-file-from-s3")
    assert isinstance(caught.value, KeyError)
    assert caught.value.suggestion == "satellite/exospherehost/get-files-from-s3"
    assert str(caught.value) == (
        "unknown satellite 'satellite/exospherehost/get-file-from-s3': "
        "did you mean 'satellite/exospherehost/get-files-from-s3'?"
    )
    with pytest.raises(UnknownSatelliteError) as caught:
        registry.get("satellite/zzz/qqqqqqqqqqqqqqqqqqqqqqqq")
    assert caught.value.suggestion is None


def test_default_registry_has_builtins() -> None:
    registry = default_registry()
    assert registry is default_registry()
    for name in [
        "get-files-from-s3",
        "delete-file-from-s3",
        "move-to-s3",
        "call-webhook",
        "send-logs-to-new-relic",
        "send-pagerduty-alert",
        "parse-pdf-with-docling",
        "deepseek-r1-distrill-llama-70b",
        "llm",
    ]:
        assert f"satellite/exospherehost/{name}" in registry
    llm = registry.get("satellite/exospherehost/deepseek-r1-distrill-llama-70b")
    assert llm.batched and llm.resources.gpu == 1
    assert registry.get("satellite/exospherehost/send-logs-to-new-relic").log_sink is not None


def _write_plugin(tmp_path: Path, identifier: str) -> str:
    module = f"plugin_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            f'''
            from pydantic import Field
            from satellite_ops import SatelliteConfig, satellite

            class ShoutConfig(SatelliteConfig):
                loud: bool = Field(True, description="Upper-case the text.")

            @satellite("{identifier}", config=ShoutConfig)
            async def shout(config, input, context=None):
                """Shout the input text."""
                return [{{"text": input["text"].upper()}}]
            '''
        )
    )
    return module


def test_env_var_loads_plugin_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identifier = f"satellite/tests/shout-{uuid.uuid4().hex[:8]}"
    module = _write_plugin(tmp_path, identifier)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(MODULES_ENV_VAR, f" {module} , ")
    registry = SatelliteRegistry()
    registry.load_plugins()
    definition = registry.get(identifier)
    assert definition.is_async and definition.accepts_context
    assert definition.description == "Shout the input text."
    # Loading again is a no-op, not a duplicate.
    registry.load_plugins()
    assert registry.identifiers() == [identifier]
    monkeypatch.delitem(sys.modules, module)


def test_argument_overrides_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identifier = f"satellite/tests/arg-{uuid.uuid4().hex[:8]}"
    module = _write_plugin(tmp_path, identifier)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(MODULES_ENV_VAR, "this_module_does_not_exist_xyz")
    registry = SatelliteRegistry()
    registry.load_plugins(module)
    assert identifier in registry
    monkeypatch.delitem(sys.modules, module)


def test_entry_point_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identifier = f"satellite/tests/ep-{uuid.uuid4().hex[:8]}"
    module = _write_plugin(tmp_path, identifier)
    dist = tmp_path / "fake_exosphere_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-exosphere-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(f"[exosphere.satellites]\nshout = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(MODULES_ENV_VAR, raising=False)
    registry = SatelliteRegistry()
    registry.load_plugins()
    assert identifier in registry
    monkeypatch.delitem(sys.modules, module)


def test_bad_module_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULES_ENV_VAR, "no_such_satellite_module_abc")
    with pytest.raises(SatelliteImportError) as caught:
        SatelliteRegistry().load_plugins()
    error = caught.value
    assert error.module == "no_such_satellite_module_abc"
    assert "no_such_satellite_module_abc" in str(error)
    assert MODULES_ENV_VAR in str(error)
    assert "ModuleNotFoundError" in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_module_raising_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"broken_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{module}.py").write_text("raise RuntimeError('boom: missing setting')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SatelliteImportError, match="RuntimeError: boom: missing setting"):
        SatelliteRegistry().load_plugins(module)


def test_two_registries_of_the_same_modules_are_the_same() -> None:
    """What a code server's rebuild compares (translate/built_clusters.py): a registry made
    again from the same modules, as the fallback for a broken plugin is on every load."""
    first, second = SatelliteRegistry(), SatelliteRegistry()
    for registry in (first, second):
        registry.load_modules(builtin_modules(), source="built-in satellites")
    assert first.same_as(second) and second.same_as(first)
    satellite("satellite/tests/extra", config=EchoConfig, registry=second)(lambda c, i: [])
    assert not first.same_as(second)
