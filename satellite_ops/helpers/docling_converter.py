"""docling's ``DocumentConverter``, built once per process, and the check of its models.

Building a converter loads docling's modules and, for the standard pipeline, its layout and
table models (seconds to minutes), so one converter per (pipeline, options) is kept for the
life of the process and reused by every item. The standard pipeline needs model files that
pods usually cannot download at run time; they are looked for before the converter is built,
so a missing model is reported by name with the command that fetches it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satellite_ops.errors import FatalError

logger = logging.getLogger(__name__)

TABLEFORMER_REPO = "docling-project/docling-models"
LAYOUT_REPO_DEFAULT = "docling-project/docling-layout-heron"
INSTALL_HINT = "pip install 'exosphere-dagster[docling]'"


@dataclass(frozen=True)
class ConverterKey:
    """The options that shape a converter; equal keys share one converter."""

    pipeline: str  # "standard" or "native"
    artifacts_path: str | None
    extract_images: bool
    ocr: bool
    language: str
    timeout_seconds: float | None


class StandardPipelineUnavailable(FatalError):
    """The standard pipeline cannot run here: models or packages are missing."""


_converters: dict[ConverterKey, Any] = {}
_failures: dict[ConverterKey, StandardPipelineUnavailable] = {}  # asked once, not per file
_lock = threading.Lock()
_built = {"count": 0}


def converters_built() -> int:
    """How many converters this process built (tests check that items share one)."""
    return _built["count"]


def get_converter(key: ConverterKey) -> Any:
    """The process-wide converter for ``key``, built on first use."""
    with _lock:
        converter = _converters.get(key)
        if converter is None:
            if key in _failures:
                raise _failures[key]
            try:
                converter = _build(key)
            except StandardPipelineUnavailable as exc:
                _failures[key] = exc
                raise
            _converters[key] = converter
            _built["count"] += 1
            logger.info("built docling converter (%s pipeline)", key.pipeline)
        return converter


def import_docling() -> Any:
    """``docling.document_converter``, or a FatalError that says what to install."""
    try:
        import docling.document_converter as module
    except ImportError as exc:
        raise FatalError(
            f"satellite parse-pdf-with-docling needs docling: {INSTALL_HINT} ({exc})"
        ) from None
    return module


def _layout_repo() -> str:
    try:
        from docling.datamodel.pipeline_options import PdfPipelineOptions

        return str(PdfPipelineOptions().layout_options.model_spec.repo_id)
    except Exception:  # noqa: BLE001 - older/newer docling: fall back to the known default
        return LAYOUT_REPO_DEFAULT


def default_models_dir() -> Path:
    """Where ``docling-tools models download`` puts models when no ``-o`` is given."""
    from docling.datamodel.settings import settings

    return Path(settings.cache_dir) / "models"


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub
        return False


def resolve_standard_models(key: ConverterKey) -> Path | None:
    """The folder holding the standard pipeline's models (``None``: the Hugging Face cache).

    Raises :class:`StandardPipelineUnavailable` naming each missing model and how to get it.
    """
    try:
        import docling_ibm_models  # noqa: F401 - layout and TableFormer code
        import transformers  # noqa: F401
    except ImportError as exc:
        raise StandardPipelineUnavailable(
            f"docling's standard pipeline needs the layout and table model code, which this "
            f"install lacks ({exc}): {INSTALL_HINT}, or set pipeline: native"
        ) from None
    layout = _layout_repo()
    # folder inside the models dir -> (what it is, `docling-tools models download` name)
    needed = {
        layout.replace("/", "--"): (f"{layout}, layout", "layout"),
        TABLEFORMER_REPO.replace("/", "--"): (f"{TABLEFORMER_REPO}, TableFormer", "tableformer"),
    }
    if key.ocr:
        needed["RapidOcr"] = ("RapidOCR, OCR", "rapidocr")
    env_dir = os.environ.get("DOCLING_ARTIFACTS_PATH")
    folder = Path(key.artifacts_path or env_dir or default_models_dir())
    missing = {f: v for f, v in needed.items() if not (folder / f).is_dir()}
    if missing and not (key.artifacts_path or env_dir):
        # Not downloaded with docling-tools: docling also finds them in the HF cache.
        repos = [f.replace("--", "/") for f in missing if "--" in f]
        if len(repos) == len(missing) and all(_in_hf_cache(r) for r in repos):
            return None
    if missing:
        names = "; ".join(what for what, _ in missing.values())
        commands = " ".join(cli for _, cli in missing.values())
        raise StandardPipelineUnavailable(
            f"docling's standard pipeline needs models that are not in {folder}: {names}. "
            f"Fetch them where the network is open with `docling-tools models download "
            f"{commands} -o {folder}` and point artifacts-path at that folder (or mount it "
            f"there), or set pipeline: native"
        )
    return folder


def _build(key: ConverterKey) -> Any:
    module = import_docling()
    from docling.datamodel.base_models import InputFormat

    if key.pipeline == "native":
        from docling.datamodel.pipeline_options import NativePdfPipelineOptions
        from docling.pipeline.native_pdf_pipeline import NativePdfPipeline

        options = NativePdfPipelineOptions(
            generate_page_images=False,
            generate_picture_images=key.extract_images,
            document_timeout=key.timeout_seconds,
        )
        option = module.PdfFormatOption(pipeline_cls=NativePdfPipeline, pipeline_options=options)
    else:
        from docling.datamodel.pipeline_options import PdfPipelineOptions

        folder = resolve_standard_models(key)
        options = PdfPipelineOptions(
            artifacts_path=folder,
            do_ocr=key.ocr,
            do_table_structure=True,
            generate_picture_images=key.extract_images,
            document_timeout=key.timeout_seconds,
        )
        if key.ocr and hasattr(options.ocr_options, "lang"):
            options.ocr_options.lang = [key.language]
        option = module.PdfFormatOption(pipeline_options=options)
    converter = module.DocumentConverter(
        allowed_formats=[InputFormat.PDF], format_options={InputFormat.PDF: option}
    )
    try:
        converter.initialize_pipeline(InputFormat.PDF)
    except (ImportError, OSError, RuntimeError) as exc:  # models that exist but do not load
        raise StandardPipelineUnavailable(
            f"docling's {key.pipeline} pipeline could not start: {type(exc).__name__}: {exc}"
        ) from None
    return converter
