"""What satellites share, the public helpers a satellite of your own may reuse too:
``from satellite_ops.helpers import client_for, s3_errors``. Nothing here registers a satellite.

- HTTP (``http_client``): :func:`build_request`, :func:`send_sync`/:func:`send_async` (408,
  429, a 5xx or a lost connection raise ``RetryableError``, another status ``FatalError``,
  with a redacted excerpt), :func:`parse_body`, :func:`header_values`, :func:`safe_url`,
  :func:`stable_key` (an idempotency key);
- S3 (``s3_client``): :func:`client_for` (a client from the one factory: one request per
  call, the runtime retries), :class:`AwsSecrets`, :func:`s3_errors` (botocore errors as retryable or
  fatal), :func:`is_not_found`, :func:`error_code`, :func:`s3_uri`, :func:`object_item`;
- log sinks (``log_sinks``): :class:`LogSinkConfig`, :data:`Record`, :func:`record_from_item`,
  :func:`level_name`, :func:`ids_of`, :func:`bounded_chunks`, :func:`forward`,
  :class:`PartialDelivery`;
- LLMs (``llm_engines``, ``batch_api_mode``, ``output_schema``): :func:`generate` with
  :class:`EngineSettings`, :class:`GenerationRequest`, :class:`Generation`;
  :func:`batch_wanted` and :func:`answer_through_batch` (a provider's Batch API);
  :func:`to_json_schema`, :func:`validate_answer`, :class:`OutputSchemaError`;
- PDF (``docling_converter``, ``pdf_checks``): :func:`get_converter` with
  :class:`ConverterKey`, :class:`StandardPipelineUnavailable`; :func:`check_pdf`,
  :func:`conversion_failure`, :func:`render_outputs`.

Names load lazily (on first use), so importing one helper does not import boto3, httpx or
docling for the others.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what editors and type checkers see; at run time __getattr__ imports lazily
    from satellite_ops.helpers.batch_api_mode import answer_through_batch as answer_through_batch
    from satellite_ops.helpers.batch_api_mode import batch_wanted as batch_wanted
    from satellite_ops.helpers.docling_converter import ConverterKey as ConverterKey
    from satellite_ops.helpers.docling_converter import (
        StandardPipelineUnavailable as StandardPipelineUnavailable,
    )
    from satellite_ops.helpers.docling_converter import get_converter as get_converter
    from satellite_ops.helpers.http_client import build_request as build_request
    from satellite_ops.helpers.http_client import header_values as header_values
    from satellite_ops.helpers.http_client import parse_body as parse_body
    from satellite_ops.helpers.http_client import safe_url as safe_url
    from satellite_ops.helpers.http_client import send_async as send_async
    from satellite_ops.helpers.http_client import send_sync as send_sync
    from satellite_ops.helpers.http_client import stable_key as stable_key
    from satellite_ops.helpers.llm_engines import EngineSettings as EngineSettings
    from satellite_ops.helpers.llm_engines import Generation as Generation
    from satellite_ops.helpers.llm_engines import GenerationRequest as GenerationRequest
    from satellite_ops.helpers.llm_engines import generate as generate
    from satellite_ops.helpers.log_sinks import LogSinkConfig as LogSinkConfig
    from satellite_ops.helpers.log_sinks import PartialDelivery as PartialDelivery
    from satellite_ops.helpers.log_sinks import Record as Record
    from satellite_ops.helpers.log_sinks import bounded_chunks as bounded_chunks
    from satellite_ops.helpers.log_sinks import forward as forward
    from satellite_ops.helpers.log_sinks import ids_of as ids_of
    from satellite_ops.helpers.log_sinks import level_name as level_name
    from satellite_ops.helpers.log_sinks import record_from_item as record_from_item
    from satellite_ops.helpers.output_schema import OutputSchemaError as OutputSchemaError
    from satellite_ops.helpers.output_schema import to_json_schema as to_json_schema
    from satellite_ops.helpers.output_schema import validate_answer as validate_answer
    from satellite_ops.helpers.pdf_checks import check_pdf as check_pdf
    from satellite_ops.helpers.pdf_checks import conversion_failure as conversion_failure
    from satellite_ops.helpers.pdf_checks import render_outputs as render_outputs
    from satellite_ops.helpers.s3_client import AwsSecrets as AwsSecrets
    from satellite_ops.helpers.s3_client import client_for as client_for
    from satellite_ops.helpers.s3_client import error_code as error_code
    from satellite_ops.helpers.s3_client import is_not_found as is_not_found
    from satellite_ops.helpers.s3_client import object_item as object_item
    from satellite_ops.helpers.s3_client import s3_errors as s3_errors
    from satellite_ops.helpers.s3_client import s3_uri as s3_uri

_MODULES = {
    "batch_api_mode": ("answer_through_batch", "batch_wanted"),
    "docling_converter": ("ConverterKey", "StandardPipelineUnavailable", "get_converter"),
    "http_client": (
        "build_request",
        "header_values",
        "parse_body",
        "safe_url",
        "send_async",
        "send_sync",
        "stable_key",
    ),
    "llm_engines": ("EngineSettings", "Generation", "GenerationRequest", "generate"),
    "log_sinks": (
        "LogSinkConfig",
        "PartialDelivery",
        "Record",
        "bounded_chunks",
        "forward",
        "ids_of",
        "level_name",
        "record_from_item",
    ),
    "output_schema": ("OutputSchemaError", "to_json_schema", "validate_answer"),
    "pdf_checks": ("check_pdf", "conversion_failure", "render_outputs"),
    "s3_client": (
        "AwsSecrets",
        "client_for",
        "error_code",
        "is_not_found",
        "object_item",
        "s3_errors",
        "s3_uri",
    ),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
