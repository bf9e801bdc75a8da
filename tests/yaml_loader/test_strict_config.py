"""Every level of a satellite's config is strict, bring-your-own satellites included.

A bring-your-own config model is often a plain ``pydantic.BaseModel``, whose default is to drop
unknown keys silently. The loader holds it to the format's rule instead: an unknown key is an
error with a did-you-mean, at any depth, unless the model's author set ``extra`` to ``"allow"``
or ``"ignore"`` in its ``model_config`` (directly or through a base class).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from satellite_ops import SatelliteConfig
from satellite_ops.registry import SatelliteRegistry, satellite
from yaml_loader import ConfigErrors, load_text, plan
from yaml_loader.errors import ConfigError, format_key_path
from yaml_loader.validation import allows_extra_keys


class Target(BaseModel):
    host: str
    port: int = 443


class Plain(BaseModel):
    words: list[str]
    target: Target | None = None
    targets: list[Target] = []


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    words: list[str] = []
    target: Target | None = None  # a plain model inside a loose one is still strict


class Ignoring(BaseModel):
    model_config = ConfigDict(extra="ignore")
    words: list[str] = []


class IgnoringChild(Ignoring):  # the choice is inherited from the base that made it
    level: int = 0


class Builtin(SatelliteConfig):
    words: list[str] = []


class Raising(BaseModel):
    """A plugin's model whose own code raises something other than a validation error."""

    words: list[str] = []
    url: str = Field(default_factory=lambda: os.environ["STRICT_TEST_URL_NEVER_SET"])

    @field_validator("words")
    @classmethod
    def no_empty_words(cls, words: list[str]) -> list[str]:
        return [w.strip() or w[1] for w in words]  # IndexError on "": a bug, not a ValueError


REGISTRY = SatelliteRegistry()
for name, model in {
    "plain": Plain,
    "loose": Loose,
    "ignoring": Ignoring,
    "ignoring-child": IgnoringChild,
    "builtin": Builtin,
    "raising": Raising,
}.items():

    def _fn(config: Any, input: Any) -> list[dict]:
        return []

    _fn.__qualname__ = f"satellite_{name}"
    satellite(f"satellite/strict/{name}", config=model, registry=REGISTRY)(_fn)


def cluster(uses: str, config: str) -> str:
    body = "".join(f"        {line}\n" for line in config.strip("\n").splitlines())
    return f"""\
version: 0.0.1b
cluster:
  identifier: strict/config
  sla: 6h
  trigger: api-call
  secrets: {{TOKEN: env:TOKEN}}
  satellites:
    - uses: satellite/strict/{uses}
      config:
{body}"""


def errors(uses: str, config: str) -> list[ConfigError]:
    try:
        plan(load_text(cluster(uses, config), "strict.yml"), REGISTRY)
    except ConfigErrors as exc:
        return exc.errors
    return []


# (satellite, config, key path of the unknown key, line, column, did-you-mean)
REFUSED = [
    ("plain", "word: [a]", "word", 10, 9, "did you mean 'words'?"),
    ("plain", "words: [a]\ntarget: {host: h, prot: 1}", "target.prot", 11, 27, "did you mean 'port'?"),
    ("plain", "words: [a]\ntargets:\n  - {host: h}\n  - {hots: h}", "targets[1].hots", 13, 14, "did you mean 'host'?"),
    ("plain", "words: [a]\nwrods: ${{ secrets.TOKEN }}", "wrods", 11, 9, "did you mean 'words'?"),
    ("loose", "target: {host: h, prot: 1}", "target.prot", 10, 27, "did you mean 'port'?"),
    ("builtin", "wrods: ${{ secrets.TOKEN }}", "wrods", 10, 9, "did you mean 'words'?"),
]  # fmt: skip


@pytest.mark.parametrize(("uses", "config", "key", "line", "column", "hint"), REFUSED)
def test_unknown_keys_are_refused_at_every_level(
    uses: str, config: str, key: str, line: int, column: int, hint: str
) -> None:
    found = errors(uses, config)
    path = f"cluster.satellites[0].config.{key}"
    matching = [e for e in found if format_key_path(e.key_path) == path]
    assert matching, "\n".join(map(str, found)) or "accepted"
    error = matching[0]
    assert error.message == f"unknown key '{key.rsplit('.', 1)[-1]}'"
    assert (error.line, error.column) == (line, column)
    assert error.hint == hint


@pytest.mark.parametrize(
    ("uses", "config"),
    [
        ("loose", "words: [a]\nanything: 1\nmore: {x: 1}"),
        ("ignoring", "words: [a]\nanything: 1"),
        ("ignoring-child", "level: 2\nanything: 1"),
        ("plain", "words: [a]\ntarget: {host: h}\ntargets: [{host: a, port: 1}]"),
    ],
)
def test_known_keys_and_models_that_allow_extra_keys_load(uses: str, config: str) -> None:
    assert errors(uses, config) == []


def test_what_counts_as_allowing_extra_keys() -> None:
    assert not allows_extra_keys(Plain)  # pydantic's default "ignore", never chosen
    assert not allows_extra_keys(Builtin)
    assert allows_extra_keys(Loose) and allows_extra_keys(Ignoring)
    assert allows_extra_keys(IgnoringChild)


WEBHOOK = """\
version: 0.0.1b
cluster:
  identifier: strict/templates
  sla: 6h
  trigger: api-call
  secrets: {TOKEN: env:TOKEN}
  satellites:
    - uses: satellite/exospherehost/call-webhook
      config:
        url: https://example.com
"""


def webhook_errors(extra: str) -> list[str]:
    from satellite_ops.registry import default_registry

    try:
        plan(load_text(WEBHOOK + extra, "templates.yml"), default_registry())
    except ConfigErrors as exc:
        return [f"{format_key_path(e.key_path)}: {e.message}" for e in exc.errors]
    return []


def test_a_template_inside_a_list_does_not_excuse_the_list() -> None:
    """A list is not a number whatever its entries render to: refused at load, not at run time."""
    found = webhook_errors("        timeout-seconds: ['${{ secrets.TOKEN }}']\n")
    assert any(e.startswith("cluster.satellites[0].config.timeout-seconds:") for e in found), found


def test_templates_are_checked_once_rendered_where_they_stand_for_the_value() -> None:
    assert webhook_errors("        timeout-seconds: ${{ secrets.TOKEN }}\n") == []
    assert webhook_errors("        expected-status: [200, '${{ secrets.TOKEN }}']\n") == []
    assert (
        webhook_errors("        headers:\n          - Authorization: ${{ secrets.TOKEN }}\n") == []
    )


@pytest.mark.parametrize(
    ("config", "raised"),
    [
        ("words: [a]", "KeyError: 'STRICT_TEST_URL_NEVER_SET'"),  # its default factory
        ("url: u\nwords: ['']", "IndexError: string index out of range"),  # its validator
    ],
)
def test_a_model_whose_own_code_raises_is_the_files_located_error(config: str, raised: str) -> None:
    """A satellite model that raises something other than a validation error used to crash
    `exosphere validate` with a traceback and take the whole code location down."""
    (error,) = errors("raising", config)
    assert format_key_path(error.key_path) == "cluster.satellites[0].config"
    assert (error.file, error.line, error.column) == ("strict.yml", 10, 9)
    assert error.message == f"the satellite's config model (Raising) raised {raised}"
    assert "fix the satellite" in error.hint
    assert errors("raising", "url: u\nwords: [a]") == []
