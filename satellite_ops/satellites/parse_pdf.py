"""Parse one PDF with docling into Markdown, text or docling's JSON (the [docling] extra).

The input is an item from ``get-files-from-s3`` (``uri: s3://bucket/key``, or ``bucket`` and
``file-path``) or any item naming a local ``path``. A file that is empty, not a PDF, corrupt
or encrypted fails its item with a message saying which, before docling sees it; docling's
own failures are reported the same way. The converter is built once per process.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import BeforeValidator, Field, field_validator

from satellite_ops import (
    FatalError,
    Resources,
    SatelliteConfig,
    SatelliteContext,
    normalise_single_key_maps,
    satellite,
)
from satellite_ops.helpers import (
    AwsSecrets,
    ConverterKey,
    StandardPipelineUnavailable,
    check_pdf,
    client_for,
    conversion_failure,
    get_converter,
    render_outputs,
    s3_errors,
    s3_uri,
)

IDENTIFIER = "satellite/exospherehost/parse-pdf-with-docling"
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_warned_fallback: set[str] = set()


class ParsePdfWithDoclingConfig(SatelliteConfig):
    """How to turn one PDF into text: language, output format and docling pipeline."""

    language: str = Field("en", description="Main language of the documents (ISO 639-1 code).")
    output_format: Literal["markdown-string", "json", "text"] = Field(
        "markdown-string", description="Output: Markdown text, docling's JSON document, or text."
    )
    extract_images: bool = Field(
        False, description="Keep embedded images (base64 in Markdown and JSON)."
    )
    pipeline: Literal["standard", "native"] = Field(
        "standard",
        description="docling pipeline: 'standard' (layout and table models) or 'native' (text "
        "with positions, no models needed).",
    )
    artifacts_path: str | None = Field(
        None,
        description="Folder with pre-downloaded docling models (default: DOCLING_ARTIFACTS_PATH, "
        "then docling's model cache).",
    )
    ocr: bool = Field(False, description="Run OCR (standard pipeline) in `language`.")
    page_range: tuple[int, int] | None = Field(
        None,
        description="First and last page to parse, 1-based and inclusive: '3-7', '5' or [3, 7].",
    )
    per_page: bool = Field(False, description="One output object per page instead of per file.")
    timeout_seconds: float | None = Field(
        None, gt=0, description="Give up on one document after this many seconds."
    )
    fallback_to_native: bool = Field(
        True,
        description="When the standard pipeline cannot run (e.g. models missing), use 'native'.",
    )
    endpoint_url: str | None = Field(
        None, description="S3 endpoint for s3:// inputs (default: AWS or AWS_ENDPOINT_URL)."
    )
    region: str | None = Field(None, description="AWS region for s3:// inputs.")
    secrets: Annotated[AwsSecrets | None, BeforeValidator(normalise_single_key_maps)] = Field(
        None, description="AWS_ACCESS_KEY / AWS_SECRET_KEY for s3:// inputs; default chain."
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


def _source(input: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """``(description, bucket, key)`` for S3 inputs or ``(path, None, None)`` for local ones."""
    uri = input.get("uri")
    if isinstance(uri, str) and uri.startswith("s3://"):
        parsed = urlparse(uri)
        return uri, parsed.netloc, unquote(parsed.path.lstrip("/"))
    if isinstance(uri, str) and uri.startswith("file://"):
        return unquote(urlparse(uri).path), None, None
    if input.get("bucket") and input.get("file-path"):
        bucket, key = str(input["bucket"]), str(input["file-path"])
        return s3_uri(bucket, key), bucket, key
    for name in ("path", "file-path", "file", "uri"):
        value = input.get(name)
        if isinstance(value, str | os.PathLike) and str(value):
            return str(value), None, None
    raise FatalError(
        "input names no PDF: give `uri` (s3://bucket/key or file://...), `bucket` and "
        f"`file-path`, or a local `path`; got keys {sorted(input)}"
    )


@contextlib.contextmanager
def _local_file(cfg: ParsePdfWithDoclingConfig, input: Mapping[str, Any]) -> Iterator[Path]:
    """The PDF as a local file: the path itself, or a temporary download from S3."""
    where, bucket, key = _source(input)
    if bucket is None or key is None:
        path = Path(where).expanduser()
        if not path.is_file():
            raise FatalError(f"{where}: no such file")
        yield path
        return
    client = client_for(cfg.endpoint_url, cfg.region, cfg.secrets)
    with tempfile.TemporaryDirectory(prefix="exosphere-pdf-") as folder:
        target = Path(folder) / (Path(key).name or "document.pdf")
        with s3_errors("download", where):
            client.download_file(bucket, key, str(target))
        yield target


def _key(cfg: ParsePdfWithDoclingConfig, pipeline: str) -> ConverterKey:
    """Options that shape the converter; the native pipeline ignores models and OCR."""
    standard = pipeline == "standard"
    return ConverterKey(
        pipeline=pipeline,
        artifacts_path=cfg.artifacts_path if standard else None,
        extract_images=cfg.extract_images,
        ocr=cfg.ocr and standard,
        language=cfg.language if standard else "",
        timeout_seconds=cfg.timeout_seconds,
    )


def _converter_for(cfg: ParsePdfWithDoclingConfig, log: Any) -> tuple[Any, str, str | None]:
    """``(converter, pipeline used, why it fell back)``."""
    key = _key(cfg, cfg.pipeline)
    try:
        return get_converter(key), cfg.pipeline, None
    except StandardPipelineUnavailable as exc:
        if cfg.pipeline != "standard" or not cfg.fallback_to_native:
            raise
        reason = str(exc)
        if reason not in _warned_fallback:  # once per process, not once per file
            _warned_fallback.add(reason)
            log.warning("using docling's native pipeline: %s", reason)
        native = ConverterKey(
            "native", None, cfg.extract_images, False, cfg.language, key.timeout_seconds
        )
        return get_converter(native), "native", reason


@satellite(
    IDENTIFIER,
    config=ParsePdfWithDoclingConfig,
    max_concurrency=1,
    resources=Resources(cpu="2", memory="4Gi"),
)
def parse_pdf_with_docling(
    config: ParsePdfWithDoclingConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Parse one PDF with docling into Markdown, JSON or text (CPU-bound: one at a time).

    One output object per document, or per page with ``per-page: true``.
    """
    source = _source(input)[0]
    with _local_file(config, input) as path:
        pages = check_pdf(path, source)
        first, last = config.page_range or (1, pages or 10**9)
        if pages is not None and first > pages:
            raise FatalError(
                f"{source}: page-range starts at {first} but the PDF has {pages} pages"
            )
        last = min(last, pages or last)
        converter, pipeline, fallback = _converter_for(config, context.log)
        result = converter.convert(path, raises_on_error=False, page_range=(first, last))
        conversion_failure(result, source, config.timeout_seconds)
    if pages is None:  # no pdfium: trust docling's count
        pages = result.document.num_pages()
        last = min(last, first + pages - 1)
    outputs = render_outputs(
        result.document,
        output_format=config.output_format,
        per_page=config.per_page,
        extract_images=config.extract_images,
        pages=range(first, last + 1),
    )
    common = {
        "source": source,
        "file-name": Path(path).name,
        "page-count": pages,
        "page-range": [first, last],
        "pipeline": pipeline,
        "language": config.language,
    }
    if fallback:
        common["fallback-reason"] = fallback
    context.log.info(
        "parsed %s: %d page(s) with the %s pipeline", source, last - first + 1, pipeline
    )
    return [{**common, **out} for out in outputs]
