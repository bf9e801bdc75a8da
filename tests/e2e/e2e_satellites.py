"""Bring-your-own satellites for the end-to-end tests (registered via EXOSPHERE_SATELLITE_MODULES).

``fake-pdf-parser`` and ``fake-llm`` stand in for docling and DeepSeek in the reference cluster:
same config keys as the real ones, no models. The rest serve the secrets and log tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
from pydantic import BaseModel, Field

from satellite_ops import satellite
from satellite_ops.config import SatelliteConfig
from satellite_ops.errors import FatalError


class FakeParserConfig(SatelliteConfig):
    language: str = "en"
    output_format: str = "markdown-string"
    extract_images: bool = False


@satellite("satellite/e2e/fake-pdf-parser", config=FakeParserConfig)
def fake_pdf_parser(config: FakeParserConfig, input: dict, context) -> list[dict]:
    """Read the listed object from S3 (AWS_ENDPOINT_URL) and 'parse' it: ``key: value`` lines
    become Markdown bullets; anything that does not start with %PDF is a fatal error."""
    data = boto3.client("s3").get_object(Bucket=input["bucket"], Key=input["file-path"])
    body = data["Body"].read()
    if not body.startswith(b"%PDF"):
        raise FatalError(f"{input['file-path']} is not a PDF (starts with {body[:4]!r})")
    body = body.decode()
    lines = [line for line in body.splitlines()[1:] if ":" in line]
    context.log.info("parsed %s: %d field(s)", input["file-path"], len(lines))
    return [{"markdown": "# Quarterly report\n" + "\n".join(f"- {line}" for line in lines)}]


class FakeLlmConfig(SatelliteConfig):
    temperature: float = 0.0
    max_tokens: int = 1024
    output_format: str = "json"
    output_schema: str | None = None


@satellite("satellite/e2e/fake-llm", config=FakeLlmConfig)
def fake_llm(config: FakeLlmConfig, input: dict) -> list[dict]:
    """'Answer' the prompt: every ``- key: value`` bullet of the report becomes a JSON field."""
    prompt = input["prompt"]
    if "output-schema" not in prompt and "structured json" not in prompt:
        raise FatalError("the prompt lost its instructions")
    fields = dict(re.findall(r"- ([a-z-]+): ([^\n\"\\]+)", prompt))
    return [{**fields, "model": "fake-llm", "max-tokens": config.max_tokens}]


# -- secrets -----------------------------------------------------------------------------
class SecretUserConfig(BaseModel):
    token: str
    out_dir: str
    fail: bool = False


@satellite("satellite/e2e/secret-user", config=SecretUserConfig)
def secret_user(config: SecretUserConfig, input: dict, context) -> list[dict]:
    """Uses a secret, and misbehaves with it: logs it, prints it, raises with it in the message."""
    context.log.info(f"using token {config.token}")
    context.log.warning("token again via args: %s", config.token)
    print(f"stdout token {config.token}")  # the satellite's own doing: not scrubbed
    if config.fail:
        raise RuntimeError(f"upstream rejected token {config.token} for {input.get('name')}")
    return [{"name": input.get("name"), "authorised": True}]


class SecretFreeConfig(BaseModel):
    out_dir: str
    label: str = ""


@satellite("satellite/e2e/secret-free", config=SecretFreeConfig)
def secret_free(config: SecretFreeConfig, input: dict, context) -> list[dict]:
    """Names no secret: records what it was given (its context.secrets and config)."""
    seen = {
        "secrets": dict(context.secrets),
        "config": config.model_dump(),
        "input": input,
    }
    path = Path(config.out_dir, f"secret-free-{context.item_id}.json")
    path.write_text(json.dumps(seen, default=str))
    return [{"seen": True}]


# -- logs ------------------------------------------------------------------------------------
class ChattyConfig(BaseModel):
    count: int = 3
    fail_for: list[int] = Field(default_factory=list)


@satellite("satellite/e2e/chatty", config=ChattyConfig)
def chatty(config: ChattyConfig, input: dict, context) -> list[dict]:
    """Fan out ``count`` objects per item, logging one line per object."""
    out = []
    for i in range(config.count):
        context.log.info(f"chatty emits {i}")
        out.append({"n": i})
    return out


class SinkConfig(BaseModel):
    mode: str = "raise"
    out_dir: str | None = None


@satellite("satellite/e2e/broken-sink", config=SinkConfig)
def broken_sink(config: SinkConfig, input: dict) -> list[dict]:
    """A bring-your-own log sink: gets ``{"records": [...]}``; raises or writes them."""
    if config.mode == "raise":
        raise ConnectionError("log backend is down")
    assert config.out_dir
    with Path(config.out_dir, "sink.jsonl").open("a") as fh:
        for record in input["records"]:
            fh.write(json.dumps(record) + "\n")
    return []
