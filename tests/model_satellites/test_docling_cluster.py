"""parse-pdf-with-docling inside a real cluster run: files listed from S3 (moto), parsed by one
converter, bad files routed to the failure branch with their reason."""

from __future__ import annotations

import pytest
from pdf_factory import report_text, write_bad_files, write_report

from exosphere_dagster.entry.launch import run_cluster_file
from satellite_ops.helpers import docling_converter

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("docling", reason="docling is part of the [dev] extra")

CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/docling-reports
  sla: 6h
  trigger: api-call
  retries: 1
  delay: 0
  satellites:
    - uses: satellite/exospherehost/get-files-from-s3
      identifier: get-files-from-s3
      config:
        bucket: {bucket}
        prefix: sec/
        extension: pdf
        endpoint-url: {endpoint}
    - uses: satellite/exospherehost/parse-pdf-with-docling
      identifier: parse-pdf-with-docling
      config:
        language: en
        output-format: markdown-string
        extract-images: false
        endpoint-url: {endpoint}
    - uses: satellite/exospherehost/call-webhook
      identifier: call-webhook
      config:
        url: {url}/parsed
        method: POST
        body:
          file-path: $${{{{ satellites.get-files-from-s3.output.file-path }}}}
          markdown: ${{{{ satellites.parse-pdf-with-docling.output.markdown }}}}
          pipeline: ${{{{ satellites.parse-pdf-with-docling.output.pipeline }}}}
  failure:
    from: parse-pdf-with-docling
    satellites:
      - uses: satellite/exospherehost/call-webhook
        identifier: report-failure
        config:
          url: {url}/failed
          method: POST
          body:
            file-path: $${{{{ satellites.get-files-from-s3.output.file-path }}}}
            error: ${{{{ failure.error }}}}
"""


def test_twenty_pdfs_share_one_converter_and_bad_files_are_routed(
    tmp_path, dagster_instance, s3, s3_bucket, moto_server, http_recorder, monkeypatch
):
    companies = [f"Company {i:02d}" for i in range(20)]
    for company in companies:
        path = write_report(tmp_path / f"{company}.pdf", company, pages=2)
        s3.upload_file(str(path), s3_bucket, f"sec/{company.replace(' ', '-')}.pdf")
    bad = write_bad_files(tmp_path / "bad")
    for kind, path in bad.items():
        s3.upload_file(str(path), s3_bucket, f"sec/bad-{kind}.pdf")

    builds = []
    real_build = docling_converter._build
    monkeypatch.setattr(docling_converter, "_converters", {})
    monkeypatch.setattr(docling_converter, "_failures", {})
    monkeypatch.setattr(
        docling_converter, "_build", lambda key: builds.append(key) or real_build(key)
    )

    cluster = tmp_path / "docling.yml"
    cluster.write_text(
        CLUSTER.format(bucket=s3_bucket, endpoint=moto_server, url=http_recorder.url)
    )
    result = run_cluster_file(cluster, instance=dagster_instance)
    assert result.success

    parsed = {r.json["file-path"]: r.json for r in http_recorder.requests if r.path == "/parsed"}
    assert len(parsed) == 20
    for company in companies:
        body = parsed[f"sec/{company.replace(' ', '-')}.pdf"]
        assert report_text(company, 1) in body["markdown"]
        assert report_text(company, 2) in body["markdown"]
    native = [key for key in builds if key.pipeline == "native"]
    assert len(native) == 1  # one converter for all 20 documents (standard is tried once)
    assert len(builds) <= 2

    failed = {
        r.json["file-path"]: r.json["error"] for r in http_recorder.requests if r.path == "/failed"
    }
    assert sorted(failed) == sorted(f"sec/bad-{kind}.pdf" for kind in bad)
    assert "corrupt PDF" in failed["sec/bad-corrupt.pdf"]
    assert "encrypted PDF" in failed["sec/bad-encrypted.pdf"]
    assert "empty file (0 bytes)" in failed["sec/bad-empty.pdf"]
    assert "not a PDF: the file is text" in failed["sec/bad-not-pdf.pdf"]
    assert all(e.startswith("FatalError: s3://") for e in failed.values())
    tags = dagster_instance.get_run_by_id(result.run_id).tags
    assert (tags["exosphere/succeeded"], tags["exosphere/routed"]) == ("20", "4")
