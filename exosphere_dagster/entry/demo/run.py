"""The demo: an embedded S3 endpoint filled with generated quarterly reports, a local webhook
receiver, a SQLite Dagster instance, and the cluster run end to end with progress output."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from exosphere_dagster.entry.demo.pdf import make_pdf

BUCKET = "aikin-financial-reports"
FAILURE_BUCKET = "aikin-financial-reports-failure"
REPORTS = [
    ("Acme Corp", "Q1", "2026", 1250000, 180000, 610000, 240000),
    ("Acme Corp", "Q2", "2026", 1410000, 205000, 690000, 275000),
    ("Globex", "Q1", "2026", 980000, 95000, 420000, 130000),
    ("Initech", "Q3", "2026", 2200000, 310000, 1010000, 415000),
]
CLUSTER_FILE = Path(__file__).with_name("financial-reports.yml")
LLM_ENV = "EXOSPHERE_DEMO_LLM_BASE_URL"
FIELDS = (
    "company, quarter, year, revenue, net-income, gross-profit, operating-income, "
    "net-income-margin, gross-profit-margin, operating-income-margin"
)
PROMPT = """\
          input:
            prompt: |
                Parse the following quarterly financial report and return a structured json output as defined in the output-schema, report text is provided below:
                ${{ satellites.parse-pdf-with-docling.output.markdown }}"""
LLM_STEP = """\
        - name: Get structured json from markdown with an LLM
          uses: satellite/exospherehost/llm
          identifier: structured-json
          config:
            engine: openai
            base-url: "{base_url}"
            model: "{model}"
            temperature: 0
            max-tokens: 512
            output-format: json
            output-schema: |
                {{"company": string, "quarter": string, "year": string, "revenue": number,
                 "net-income": number, "gross-profit": number, "operating-income": number,
                 "net-income-margin": number, "gross-profit-margin": number,
                 "operating-income-margin": number}}
"""
FALLBACK_STEP = """\
        - name: Get structured json from markdown (rule-based CPU stand-in for the LLM)
          uses: satellite/demo/extract-financials
          identifier: structured-json
          config:
            fields: [{fields}]
"""


def llm_step(echo: Callable[[str], Any]) -> str:
    """The LLM satellite on the configured engine, or the CPU stand-in, with a clear message."""
    base_url = os.environ.get(LLM_ENV)
    if base_url:
        model = os.environ.get("EXOSPHERE_DEMO_LLM_MODEL", "default")
        echo(f"demo: LLM step on the OpenAI-compatible engine at {base_url} (model {model})")
        return LLM_STEP.format(base_url=base_url, model=model) + PROMPT
    echo(
        f"demo: no LLM engine configured ({LLM_ENV} unset: point it at vLLM's server, llama.cpp "
        "or Ollama); using the rule-based CPU stand-in for the LLM step"
    )
    return FALLBACK_STEP.format(fields=FIELDS) + PROMPT


def report_lines(
    company: str, quarter: str, year: str, revenue: int, net: int, gross: int, op: int
) -> list[str]:
    return [
        f"{company} - quarterly financial report",
        f"Company: {company}",
        f"Quarter: {quarter}",
        f"Year: {year}",
        f"Revenue: {revenue}",
        f"Net income: {net}",
        f"Gross profit: {gross}",
        f"Operating income: {op}",
        f"Net income margin: {round(100 * net / revenue, 2)}%",
        f"Gross profit margin: {round(100 * gross / revenue, 2)}%",
        f"Operating income margin: {round(100 * op / revenue, 2)}%",
    ]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        authorised = self.headers.get("Authorization") == f"Bearer {os.environ['DEMO_API_TOKEN']}"
        if authorised:
            _Receiver.received.append(json.loads(body))
        self.send_response(200 if authorised else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if authorised else b'{"error": "unauthorised"}')

    def log_message(self, *args: Any) -> None:
        pass


def start_services() -> tuple[Any, str, ThreadingHTTPServer]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise SystemExit("the demo needs moto's S3 server: pip install -e '.[dev]'") from None
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "demo-access-key",
            "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DEMO_API_TOKEN": "demo-bearer-token",
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    return moto, f"http://{host}:{port}", receiver


def fill_bucket(endpoint: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=FAILURE_BUCKET)
    keys = []
    for report in REPORTS:
        key = f"sec/{report[0].lower().replace(' ', '-')}-{report[1].lower()}-{report[2]}.pdf"
        s3.put_object(Bucket=BUCKET, Key=key, Body=make_pdf(report_lines(*report)))
        keys.append(key)
    s3.put_object(Bucket=BUCKET, Key="sec/scanned-q4-2025.pdf", Body=b"%PDF-1.4 truncated scan")
    return keys


def run_demo(echo: Callable[[str], Any] = print) -> int:
    from exosphere_dagster.entry.launch import run_cluster_file
    from exosphere_dagster.resolve.catalog import load_catalog

    modules = os.environ.get("EXOSPHERE_SATELLITE_MODULES", "")
    os.environ["EXOSPHERE_SATELLITE_MODULES"] = ",".join(
        filter(None, [modules, "exosphere_dagster.entry.demo.satellites"])
    )
    moto, endpoint, receiver = start_services()
    try:
        keys = fill_bucket(endpoint)
        echo(
            f"demo: embedded S3 at {endpoint} with {len(keys)} reports + 1 corrupt scan in s3://{BUCKET}/sec/"
        )
        workdir = Path(os.environ["DAGSTER_HOME"]) / "demo"
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = workdir / "financial-reports.yml"
        webhook = f"http://127.0.0.1:{receiver.server_address[1]}/v1/financial-reports"
        text = CLUSTER_FILE.read_text().replace("{{LLM}}", llm_step(echo))
        cluster.write_text(text.replace("{{S3}}", endpoint).replace("{{WEBHOOK}}", webhook))
        catalog = load_catalog([cluster], log=False)
        if catalog.broken:
            for error in catalog.errors:
                echo(str(error))
            return 1
        echo(f"demo: running {cluster}")
        execution = catalog.executions[catalog.plans[0].job_name]
        result = run_cluster_file(cluster, execution=execution, echo=echo)
        echo("")
        for document in sorted(_Receiver.received, key=lambda d: str(d)):
            echo(json.dumps(document, indent=2))
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint)
        failed = [o["Key"] for o in s3.list_objects_v2(Bucket=FAILURE_BUCKET).get("Contents", [])]
        left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        echo(
            f"\ndemo: {len(_Receiver.received)} structured reports delivered to the webhook; "
            f"moved to s3://{FAILURE_BUCKET}: {failed}; left in s3://{BUCKET}: {left}"
        )
        echo(
            f"demo: run {result.run_id} {'succeeded' if result.success else 'FAILED'}. See it in the UI: "
            f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/exosphere dev {workdir} "
            f"then open http://127.0.0.1:3000/runs/{result.run_id}"
        )
        return 0 if result.success else 1
    finally:
        receiver.shutdown()
        moto.stop()
