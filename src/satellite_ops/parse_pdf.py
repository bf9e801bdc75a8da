"""Config model of the docling PDF parser; the parser itself ships with the [docling] extra."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from satellite_ops.config import SatelliteConfig
from satellite_ops.context import SatelliteContext
from satellite_ops.registry import Resources, satellite

IDENTIFIER = "satellite/exospherehost/parse-pdf-with-docling"
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class ParsePdfWithDoclingConfig(SatelliteConfig):
    """How to turn one PDF into text: language, output format and docling pipeline."""

    language: str = Field("en", description="Main language of the documents (ISO 639-1 code).")
    output_format: Literal["markdown-string", "json", "text"] = Field(
        "markdown-string", description="Output: Markdown text, docling's JSON document, or text."
    )
    extract_images: bool = Field(False, description="Also extract embedded images.")
    pipeline: Literal["standard", "native"] = Field(
        "standard",
        description="docling pipeline: 'standard' (layout models) or 'native' (text only, "
        "no models needed).",
    )
    artifacts_path: str | None = Field(
        None, description="Folder with pre-downloaded docling models (for offline pods)."
    )
    page_range: tuple[int, int] | None = Field(
        None,
        description="First and last page to parse, 1-based and inclusive: '3-7', '5' or [3, 7].",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description="Give up on one document after this many seconds."
    )
    fallback_to_native: bool = Field(
        True,
        description="When the standard pipeline cannot run (e.g. models missing), use 'native'.",
    )

    @field_validator("page_range", mode="before")
    @classmethod
    def _parse_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        if isinstance(value, str):
            match = _RANGE.match(value)
            if not match:
                raise ValueError("page-range must look like '3-7' or '5'")
            first = int(match.group(1))
            return (first, int(match.group(2) or first))
        return value

    @field_validator("page_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1]:
            raise ValueError("page-range needs 1 <= first page <= last page")
        return value


@satellite(
    IDENTIFIER,
    config=ParsePdfWithDoclingConfig,
    max_concurrency=1,
    resources=Resources(cpu="2", memory="4Gi"),
)
def parse_pdf_with_docling(
    config: ParsePdfWithDoclingConfig | Mapping[str, Any],
    input: Mapping[str, Any],
    context: SatelliteContext | None = None,
) -> list[dict[str, Any]]:
    """Parse one PDF with docling into Markdown, JSON or text (CPU-bound: one at a time).

    Not in this build: the implementation ships with the [docling] extra work.
    """
    raise NotImplementedError(
        f"{IDENTIFIER} is not implemented in this build: docling support ships with the "
        "[docling] extra work (pip install 'exosphere-dagster[docling]' once it lands)"
    )
