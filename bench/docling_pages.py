"""docling pages/s through the parse-pdf satellite (one converter per process, items in a chunk)
vs a plain script that builds a DocumentConverter for every file, as a per-file Dagster op would.

Both use docling's model-free native pipeline (the layout models cannot be downloaded here) on
the same generated multi-page PDFs, in the same run.

    .venv/bin/python bench/docling_pages.py [--files 20] [--pages 5]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from fpdf import FPDF


def write_reports(folder: Path, files: int, pages: int) -> list[Path]:
    paths = []
    for n in range(files):
        pdf = FPDF()
        pdf.set_font("helvetica", size=11)
        for page in range(1, pages + 1):
            pdf.add_page()
            pdf.cell(text=f"Company {n} quarterly report, page {page}")
            pdf.ln(10)
            pdf.multi_cell(0, 6, text=f"Revenue, net income and margins for company {n}. " * 20)
        path = folder / f"report-{n:03d}.pdf"
        pdf.output(str(path))
        paths.append(path)
    return paths


def through_satellite(paths: list[Path]) -> float:
    from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
    from exosphere_dagster.runtime.items import seed_items
    from satellite_ops.registry import default_registry
    from yaml_loader.ir import RetrySettings, SatelliteNode
    from yaml_loader.templates import compile_value

    definition = default_registry().get("satellite/exospherehost/parse-pdf-with-docling")
    node = SatelliteNode(
        id="parse", op_name="parse", name="parse", uses=definition.identifier, branch="main",
        parents=(), config=compile_value({"pipeline": "native"}), input=None,
        retry=RetrySettings(0, 0), timeout=None, concurrency=None, resources=None,
        secrets=frozenset(), line=1, column=1,
    )  # fmt: skip
    job = ChunkJob(node=node, definition=definition, base_scope={}, log=logging.getLogger("bench"))
    started = time.perf_counter()
    children, report = run_chunk(job, seed_items([{"file-path": str(p)} for p in paths]))
    elapsed = time.perf_counter() - started
    assert not report.failed and len(children) == len(paths), report.failed[:1]
    return elapsed


def converter_per_file(paths: list[Path]) -> float:
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import DocumentConverter, PdfFormatOption
    from docling.pipeline.native_pdf_pipeline import NativePdfPipeline

    started = time.perf_counter()
    for path in paths:
        option = PdfFormatOption(
            pipeline_cls=NativePdfPipeline, pipeline_options=NativePdfPipelineOptions()
        )
        converter = DocumentConverter(
            allowed_formats=[InputFormat.PDF], format_options={InputFormat.PDF: option}
        )
        markdown = converter.convert(str(path)).document.export_to_markdown()
        assert "quarterly report" in markdown
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_reports(Path(tmp), args.files, args.pages)
        total = args.files * args.pages
        converter_per_file(paths[:1])  # warm-up: imports and docling's first-use setup, for both
        baseline = converter_per_file(paths)
        ours = through_satellite(paths)
    print(f"{args.files} PDFs x {args.pages} pages, docling native pipeline, CPU")
    print(f"converter per file (baseline): {baseline:.2f} s = {total / baseline:.1f} pages/s")
    print(f"parse-pdf-with-docling satellite: {ours:.2f} s = {total / ours:.1f} pages/s")
    print(f"ratio (satellite / baseline pages/s): {baseline / ours:.2f}x")


if __name__ == "__main__":
    main()
