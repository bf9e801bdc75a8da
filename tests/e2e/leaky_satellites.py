"""Satellites that spill secrets in every form software writes strings in (for
test_secrets_forms.py; registered via EXOSPHERE_SATELLITE_MODULES).

``leak-source`` names the secrets and returns them in its output; ``leak-echo`` names none and
spills what it was given. Both write each form to Dagster's log, to stdout, to a stdlib logger,
and into an exception message.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from urllib.parse import quote, urlencode

from pydantic import BaseModel

from satellite_ops import satellite

stdlib_log = logging.getLogger("e2e.leaky")


def spilled(token: str) -> dict[str, str]:
    """Label -> a line holding ``token`` the way a satellite or a library would write it."""
    return {
        "json": json.dumps({"token": token, "user": "svc"}),
        "json-utf8": json.dumps({"token": token}, ensure_ascii=False),
        "json-in-repr": repr(json.dumps({"token": token})),
        "repr": repr({"token": token}),
        "repr-quoted": repr(f'say "{token}"'),
        "ascii": ascii(token),
        "bytes": repr(token.encode()),
        "query": "https://api.example/v1?" + urlencode({"token": token}),
        "path": "https://api.example/v1/" + quote(token, safe=""),
        "basic": "Authorization: Basic " + base64.b64encode(token.encode()).decode(),
        "plain": f"token is {token} ok",
    }


def _spill(context, who: str, tokens: list[str]) -> None:
    for token in tokens:
        for label, line in spilled(token).items():
            context.log.info(f"{who} {label}: {line}")
            print(f"{who} stdout {label}: {line}")
        print(f"{who} stderr plain: {token}", file=sys.stderr)
        stdlib_log.warning("%s stdlib json: %s", who, json.dumps({"token": token}))


class SourceConfig(BaseModel):
    tokens: list[str]


@satellite("satellite/e2e/leak-source", config=SourceConfig)
def leak_source(config: SourceConfig, input: dict, context) -> list[dict]:
    """Names the secrets; spills them; raises with them for ``bad``; returns them otherwise
    (named after the last one when the input asks: item ids are made from names)."""
    _spill(context, "source", config.tokens)
    if input["name"] == "bad":
        body = json.dumps({"tokens": config.tokens})
        raise RuntimeError(f"upstream rejected { ({'tokens': config.tokens, 'body': body})!r}")
    name = config.tokens[-1] if input.get("token_as_name") else input["name"]
    return [{"name": name, "tokens": config.tokens}]


class EchoConfig(BaseModel):
    fail_for: str = "echo-bad"


@satellite("satellite/e2e/leak-echo", config=EchoConfig)
def leak_echo(config: EchoConfig, input: dict, context) -> list[dict]:
    """Names no secret: spills what its parent returned, and raises with its input."""
    _spill(context, "echo", input["tokens"])
    if input["name"] == config.fail_for:
        raise ValueError(f"cannot use {input!r}")
    return [{"name": input["name"], "echoed": len(input["tokens"])}]


class RoutedConfig(BaseModel):
    error: str


@satellite("satellite/e2e/leak-routed", config=RoutedConfig)
def leak_routed(config: RoutedConfig, input: dict, context) -> list[dict]:
    """The failure branch: logs the error it was routed with."""
    context.log.info(f"routed: {config.error}")
    return []
