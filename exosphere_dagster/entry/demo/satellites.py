"""The demo's two stand-in satellites: read a generated report's text from S3 and pull the
figures out of it (docling and an LLM do this in the reference pipeline)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from exosphere_dagster.entry.demo.pdf import read_pdf_text
from satellite_ops import FatalError, satellite
from satellite_ops.helpers.s3_client import s3_client


class ReadTextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    bucket: str
    file_path: str = Field(alias="file-path")
    endpoint_url: str | None = Field(None, alias="endpoint-url")


@satellite("satellite/demo/read-pdf-text", config=ReadTextConfig, max_concurrency=4)
def read_pdf(config: ReadTextConfig, input: dict) -> list[dict]:
    """Download a PDF from S3 and return its text as markdown."""
    body = (
        s3_client(endpoint_url=config.endpoint_url)
        .get_object(Bucket=config.bucket, Key=config.file_path)["Body"]
        .read()
    )
    try:
        text = read_pdf_text(body)
    except ValueError as exc:
        raise FatalError(f"{config.file_path}: {exc}") from None
    return [{"markdown": text, "pages": 1}]


class ExtractConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[str]


FIGURE = re.compile(r"^(?P<key>[A-Za-z -]+):\s*(?P<value>.+)$", re.M)


@satellite("satellite/demo/extract-financials", config=ExtractConfig)
def extract(config: ExtractConfig, input: dict) -> list[dict]:
    """Turn 'Key: value' lines of the prompt's report into the requested JSON fields."""
    found = {
        m["key"].strip().lower().replace(" ", "-"): m["value"].strip()
        for m in FIGURE.finditer(input.get("prompt", ""))
    }
    result: dict = {}
    for name in config.fields:
        value = found.get(name)
        if value is None:
            raise FatalError(f"field '{name}' not found in the report")
        number = value.replace(",", "").rstrip("%")
        try:
            result[name] = float(number) if name not in ("company", "quarter", "year") else value
        except ValueError:
            result[name] = value
    return [result]
