"""parse-pdf-with-docling on PDFs the tests write: text comes out, bad files fail clearly."""

from __future__ import annotations

import sys
import types

import pytest
from pdf_factory import report_text, write_bad_files, write_report

from satellite_ops import FatalError
from satellite_ops.helpers import docling_converter as dc
from satellite_ops.satellites.parse_pdf import ParsePdfWithDoclingConfig, parse_pdf_with_docling
from satellite_ops.testing import CapturedLog, call

pytest.importorskip("docling", reason="docling is part of the [dev] extra")

NATIVE = {"pipeline": "native"}


def test_multi_page_pdf_becomes_markdown_with_all_its_text(tmp_path):
    path = write_report(tmp_path / "acme.pdf", "Acme Corp", pages=4)
    log = CapturedLog()
    (out,) = call(parse_pdf_with_docling, NATIVE, {"path": str(path)}, log=log)
    for page in range(1, 5):
        assert report_text("Acme Corp", page) in out["markdown"]
    assert out["page-count"] == 4
    assert out["page-range"] == [1, 4]
    assert out["pipeline"] == "native"
    assert out["file-name"] == "acme.pdf"
    assert log.messages == [f"parsed {path}: 4 page(s) with the native pipeline"]


def test_per_page_outputs_follow_the_page_range(tmp_path):
    path = write_report(tmp_path / "five.pdf", "Globex", pages=5)
    config = {**NATIVE, "per-page": True, "page-range": "2-4", "output-format": "text"}
    outputs = call(parse_pdf_with_docling, config, {"uri": f"file://{path}"})
    assert [o["page"] for o in outputs] == [2, 3, 4]
    for out in outputs:
        assert report_text("Globex", out["page"]) in out["text"]
        others = {p for p in range(1, 6) if p != out["page"]}
        assert not any(report_text("Globex", p) in out["text"] for p in others)


def test_json_output_is_the_docling_document(tmp_path):
    path = write_report(tmp_path / "doc.pdf", "Initech", pages=2)
    (out,) = call(parse_pdf_with_docling, {**NATIVE, "output-format": "json"}, {"path": str(path)})
    document = out["document"]
    assert document["schema_name"] == "DoclingDocument"
    texts = " ".join(t["text"] for t in document["texts"])
    assert report_text("Initech", 2) in texts


def test_page_range_past_the_end_is_a_clear_failure(tmp_path):
    path = write_report(tmp_path / "two.pdf", pages=2)
    with pytest.raises(FatalError, match="page-range starts at 5 but the PDF has 2 pages"):
        call(parse_pdf_with_docling, {**NATIVE, "page-range": "5-9"}, {"path": str(path)})


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "corrupt PDF"),
        ("encrypted", "encrypted PDF: it needs a password"),
        ("empty", "empty file (0 bytes), not a PDF"),
        ("not-pdf", "not a PDF: the file is text ('These are meeting notes"),
    ],
)
def test_bad_files_fail_their_item_with_a_clear_reason(tmp_path, kind, message):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(FatalError) as info:
        call(parse_pdf_with_docling, NATIVE, {"path": str(path)})
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_input_and_missing_file_are_clear(tmp_path):
    with pytest.raises(FatalError, match="input names no PDF"):
        call(parse_pdf_with_docling, NATIVE, {"size": 3})
    with pytest.raises(FatalError, match="no such file"):
        call(parse_pdf_with_docling, NATIVE, {"path": str(tmp_path / "gone.pdf")})


def test_s3_input_is_downloaded_from_the_configured_endpoint(tmp_path, s3, s3_bucket, moto_server):
    path = write_report(tmp_path / "s3.pdf", "Umbrella", pages=2)
    s3.upload_file(str(path), s3_bucket, "sec/q1/s3.pdf")
    item = {
        "bucket": s3_bucket,
        "file-path": "sec/q1/s3.pdf",
        "uri": f"s3://{s3_bucket}/sec/q1/s3.pdf",
    }
    (out,) = call(parse_pdf_with_docling, {**NATIVE, "endpoint-url": moto_server}, item)
    assert report_text("Umbrella", 2) in out["markdown"]
    assert out["source"] == f"s3://{s3_bucket}/sec/q1/s3.pdf"


def test_s3_input_honours_aws_endpoint_url(tmp_path, s3, s3_bucket, moto_server, monkeypatch):
    path = write_report(tmp_path / "env.pdf", "Hooli", pages=1)
    s3.upload_file(str(path), s3_bucket, "env.pdf")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    (out,) = call(parse_pdf_with_docling, NATIVE, {"uri": f"s3://{s3_bucket}/env.pdf"})
    assert report_text("Hooli", 1) in out["markdown"]
    with pytest.raises(FatalError, match="download s3://.*/missing.pdf failed"):
        call(parse_pdf_with_docling, NATIVE, {"uri": f"s3://{s3_bucket}/missing.pdf"})


def test_standard_pipeline_without_model_code_falls_back_or_says_what_to_install(tmp_path):
    path = write_report(tmp_path / "std.pdf", pages=1)
    if _has_model_code():
        pytest.skip("the full docling install is present; covered by the missing-models test")
    with pytest.raises(FatalError, match=r"exosphere-dagster\[docling\]"):
        call(
            parse_pdf_with_docling,
            {"pipeline": "standard", "fallback-to-native": False},
            {"path": str(path)},
        )
    (out,) = call(parse_pdf_with_docling, {"pipeline": "standard"}, {"path": str(path)})
    assert out["pipeline"] == "native"
    assert "exosphere-dagster[docling]" in out["fallback-reason"]


def _has_model_code() -> bool:
    try:
        import docling_ibm_models  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def test_missing_standard_models_are_named_with_the_download_command(tmp_path, monkeypatch):
    if not _has_model_code():  # stand-ins: only the model files are under test here
        monkeypatch.setitem(
            sys.modules, "docling_ibm_models", types.ModuleType("docling_ibm_models")
        )
        monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))
    models = tmp_path / "models"
    (models / "docling-project--docling-models").mkdir(parents=True)  # TableFormer is there
    key = dc.ConverterKey("standard", str(models), False, True, "en", None)
    with pytest.raises(dc.StandardPipelineUnavailable) as info:
        dc.resolve_standard_models(key)
    message = str(info.value)
    assert "docling-project/docling-layout-heron, layout" in message
    assert "RapidOCR, OCR" in message
    assert "docling-project/docling-models" not in message
    assert f"docling-tools models download layout rapidocr -o {models}" in message
    assert "pipeline: native" in message


def test_config_accepts_the_reference_example_and_rejects_bad_ranges():
    config = ParsePdfWithDoclingConfig.model_validate(
        {"language": "en", "output-format": "markdown-string", "extract-images": False}
    )
    assert (config.pipeline, config.fallback_to_native) == ("standard", True)
    assert ParsePdfWithDoclingConfig.model_validate({"page-range": 3}).page_range == (3, 3)
    with pytest.raises(ValueError, match="page-range"):
        ParsePdfWithDoclingConfig.model_validate({"page-range": "9-2"})
