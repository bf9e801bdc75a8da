"""The reference cluster (examples/structured-pdfs-fixed.yml), written in Python.

    python examples/reference_pipeline.py > clusters/structured-pdfs.yml   # the same cluster file
    exosphere clusters apply examples/reference_pipeline.py                # or send it as it is

It plans exactly like the YAML file (tests/yaml_loader/test_python_api.py checks it), so the
``${{ }}`` references the reference spells without blanks (``${{satellites.X.output}}``,
``$${{...}}``) are written as plain strings here; ``secret(...)`` writes the ``${{ secrets.X }}``
form the reference uses, and ``sat.output["field"]`` would write ``${{ satellites.X.output.field }}``.
"""

from __future__ import annotations

import sys

from yaml_loader.python.api import Cluster, Failure, Logs, Satellite, Trigger, secret

FILE_PATH = "$${{satellites.get-files-from-s3.output.file-path}}"
AWS_KEYS = [
    {"AWS_ACCESS_KEY": secret("AWS_ACCESS_KEY")},
    {"AWS_SECRET_KEY": secret("AWS_SECRET_KEY")},
]
# The reference's output schema, verbatim (including the blank after the first "string,").
OUTPUT_SCHEMA = "\n".join(
    [
        "{",
        '    "company": string, ',
        '    "quarter": string,',
        '    "year": string,',
        '    "revenue": number,',
        '    "net-income": number,',
        '    "gross-profit": number,',
        '    "operating-income": number,',
        '    "net-income-margin": number,',
        '    "gross-profit-margin": number,',
        '    "operating-income-margin": number,',
        "}",
        "",
    ]
)

files = Satellite(
    name="Get files from S3",
    uses="satellite/exospherehost/get-files-from-s3",
    identifier="get-files-from-s3",
    config={
        "bucket": "aikin-financial-reports",
        "prefix": "sec",
        "recursive": True,
        "extension": "pdf",
        "secrets": AWS_KEYS,
    },
)
parse = Satellite(
    name="Extract text from PDF",
    uses="satellite/exospherehost/parse-pdf-with-docling",
    identifier="parse-pdf-with-docling",
    config={"language": "en", "output-format": "markdown-string", "extract-images": False},
)
extract = Satellite(
    name="Get structured json from markdown using DeepSeek",
    uses="satellite/exospherehost/deepseek-r1-distrill-llama-70b",
    identifier="deepseek-r1-distrill-llama-70b",
    retries=5,
    config={
        "temperature": 0.5,
        "max-tokens": 1024,
        "output-format": "json",
        "output-schema": OUTPUT_SCHEMA,
    },
    input={
        "prompt": (
            "Parse the following quarterly financial report and return a structured json output"
            " as defined in the output-schema, report text is provided below:\n"
            "${{satellites.parse-pdf-with-docling.output}}\n"
        )
    },
)
webhook = Satellite(
    name="Call Webhook to send the structured json to Aikin API",
    uses="satellite/exospherehost/call-webhook",
    identifier="call-webhook",
    config={
        "url": "https://api.aikin.com/v1/financial-reports",
        "method": "POST",
        "headers": [{"Authorization": f"Bearer {secret('API_BEARER_TOKEN')}"}],
        "body": [
            {
                "data": "${{satellites.deepseek-r1-distrill-llama-70b.output}}",
                "file-path": FILE_PATH,
            }
        ],
    },
)
delete = Satellite(
    name="Delete success file from S3",
    uses="satellite/exospherehost/delete-file-from-s3",
    identifier="delete-file-from-s3",
    config={"bucket": "aikin-financial-reports", "file-path": FILE_PATH, "secrets": AWS_KEYS},
)

new_relic = Satellite(
    name="Send logs to NewRelic",
    uses="satellite/exospherehost/send-logs-to-new-relic",
    identifier="send-logs-to-new-relic",
    config={
        "account-id": secret("NEW_RELIC_ACCOUNT_ID"),
        "api-key": secret("NEW_RELIC_API_KEY"),
        "application-id": secret("NEW_RELIC_APPLICATION_ID"),
        "log-level": "info",
    },
)

move_to_failure_bucket = Satellite(
    name="Move to failure bucket",
    uses="satellite/exospherehost/move-to-s3",
    identifier="move-to-failure-bucket",
    config={
        "origin-source": "s3",
        "origin-bucket": "aikin-financial-reports-failure",
        "origin-file-path": FILE_PATH,
        "destination-source": "s3",
        "destination-bucket": "aikin-financial-reports-failure",
        "destination-file-path": (
            "failed/quaterly-financial-reports/$${{satellites.get-files-from-s3.output.file-name}}"
        ),
        "secrets": [
            {"ORIGIN_AWS_ACCESS_KEY": secret("AWS_ACCESS_KEY")},
            {"ORIGIN_AWS_SECRET_KEY": secret("AWS_SECRET_KEY")},
            {"DESTINATION_AWS_ACCESS_KEY": secret("FAILURE_S3_AWS_ACCESS_KEY")},
            {"DESTINATION_AWS_SECRET_KEY": secret("FAILURE_S3_AWS_SECRET_KEY")},
        ],
    },
)
pagerduty = Satellite(
    name="Send failure notification on PagerDuty",
    uses="satellite/exospherehost/send-pagerduty-alert",
    identifier="send-pagerduty-alert",
    config={
        "pagerduty-api-key": secret("PAGERDUTY_API_KEY"),
        "pagerduty-service-id": secret("PAGERDUTY_SERVICE_ID"),
    },
    input={
        "message": (
            "Cluster ${{cluster.identifier}} failed at ${{cluster.trigger}} for file "
            "$${{satellites.get-files-from-s3.output.file-path}}  with error "
            "${{satellites.get-files-from-s3.output.error}}, file has been moved to failure "
            "bucket with path $${{satellites.move-to-failure-bucket.output.file-uri}}\n"
        )
    },
)

reference = Cluster(
    sla="6h",
    title="Structured JSON from Quarterly Financial Reports",
    description=(
        "This cluster will take a list of PDF files from S3 and return a structured JSON output."
    ),
    identifier="aikin/strucutred-pdfs",
    trigger=Trigger(cron="0 0 * * *"),
    retries=3,
    # placeholders, as in the reference; a real cluster names env:NAME or aws-secretsmanager:ID
    secrets={
        "AWS_ACCESS_KEY": "your-aws-access-key",
        "AWS_SECRET_KEY": "your-aws-secret-key",
        "API_BEARER_TOKEN": "your-api-bearer-token",
        "NEW_RELIC_ACCOUNT_ID": "your-new-relic-account-id",
        "NEW_RELIC_API_KEY": "your-new-relic-api-key",
        "NEW_RELIC_APPLICATION_ID": "your-new-relic-application-id",
        "FAILURE_S3_AWS_ACCESS_KEY": "your-failure-s3-aws-access-key",
        "FAILURE_S3_AWS_SECRET_KEY": "your-failure-s3-aws-secret-key",
        "PAGERDUTY_API_KEY": "your-pagerduty-api-key",
        "PAGERDUTY_SERVICE_ID": "your-pagerduty-service-id",
    },
    satellites=[files, parse, extract, webhook, delete],
    logs=Logs(satellites=[new_relic]),
    failure=Failure(from_=parse, satellites=[move_to_failure_bucket, pagerduty]),
)

if __name__ == "__main__":
    sys.stdout.write(reference.to_yaml())
