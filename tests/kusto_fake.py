"""A local stand-in for what ``azure-kusto-ingest`` talks to, on one HTTPS port of 127.0.0.1.

Emulated (only as far as the official client needs): Entra ID's OpenID discovery and the
client-credentials token endpoint (``POST /<tenant>/oauth2/v2.0/token``), an App Service style
managed-identity endpoint (``GET /msi/token``), Kusto's cloud metadata
(``/v1/rest/auth/metadata``), streaming ingestion (``POST /v1/rest/ingest/<db>/<table>``), and
for queued ingestion the management commands ``.get ingestion resources`` and
``.get kusto identity token``, a blob container (``PUT`` of the gzip blob) and the
ready-for-aggregation queue (``POST .../messages``). Not emulated: the ingestion itself (what
the service does with the blob later), ingestion status queues, mapping validation.

Every data request is recorded with its token and decoded rows. ``answers`` scripts statuses
for the ingestion calls (streaming POST or queue POST); ``hold`` makes them wait on an event.
The server uses a throw-away self-signed certificate: set ``REQUESTS_CA_BUNDLE`` to ``ca_file``
(Entra ID authorities must be https).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from http_servers import LoopbackHTTPServer

TOKEN = "fake-aad-token-0123456789"


@dataclass
class Ingestion:
    kind: str  # "streaming" or "queued"
    database: str
    table: str
    token: str | None
    rows: list[dict[str, Any]]
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeKusto:
    url: str = ""
    ca_file: str = ""
    ingestions: list[Ingestion] = field(default_factory=list)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses for the next ingestion calls
    hold: threading.Event | None = None  # ingestion calls wait for it when set
    blobs: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for ingestion in self.ingestions for row in ingestion.rows]


def _table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "Tables": [
            {
                "TableName": "Table_0",
                "Columns": [{"ColumnName": c, "DataType": "String"} for c in columns],
                "Rows": rows,
            }
        ]
    }


def _rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _handler(fake: FakeKusto) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            self.send_header("ETag", '"0x1"')
            self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            self.end_headers()
            self.wfile.write(data)

        def _ingestion_status(self) -> int:
            if fake.hold is not None:
                fake.hold.wait()
            with fake.lock:
                return fake.answers.pop(0) if fake.answers else 200

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            auth = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
            if path == "/v1/rest/auth/metadata":
                return self._send(404, {})  # the public cloud's defaults
            if path.endswith("/.well-known/openid-configuration"):
                tenant = path.split("/")[1]
                base = f"{fake.url}/{tenant}"
                return self._send(
                    200,
                    {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "issuer": f"{base}/v2.0",
                    },
                )
            if path.endswith("/oauth2/v2.0/token") or path == "/msi/token":
                with fake.lock:
                    fake.token_requests.append(parse_qs(body.decode()) or query)
                expires = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
                return self._send(
                    200,
                    {
                        "access_token": TOKEN,
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "expires_on": expires,
                        "resource": "https://kusto.kusto.windows.net",
                    },
                )
            if path.startswith("/v1/rest/ingest/"):
                _, _, _, _, database, table = path.split("/")
                status = self._ingestion_status()
                if status != 200:
                    return self._send(status, {"error": {"code": "Fake", "message": "scripted"}})
                data = gzip.decompress(body) if self.headers.get("Content-Encoding") else body
                with fake.lock:
                    fake.ingestions.append(
                        Ingestion("streaming", database, table, auth, _rows(data), dict(query))
                    )
                return self._send(200, _table(["ConsumedRecordsCount"], [[1]]))
            if path == "/v1/rest/mgmt":
                command = json.loads(body)["csl"]
                if "ingestion resources" in command:
                    base = f"{fake.url}/devstoreaccount1"
                    return self._send(
                        200,
                        _table(
                            ["ResourceTypeName", "StorageRoot"],
                            [
                                ["SecuredReadyForAggregationQueue", f"{base}/ready?sv=1&sig=s"],
                                ["TempStorage", f"{base}/temp?sv=1&sig=s"],
                                ["FailedIngestionsQueue", f"{base}/failed?sv=1&sig=s"],
                                ["SuccessfulIngestionsQueue", f"{base}/ok?sv=1&sig=s"],
                                ["IngestionsStatusTable", f"{base}/status?sv=1&sig=s"],
                            ],
                        ),
                    )
                return self._send(200, _table(["AuthorizationContext"], [["fake-context"]]))
            if self.command == "PUT" and "/devstoreaccount1/temp/" in path:
                with fake.lock:
                    fake.blobs[path.rsplit("/", 1)[1]] = body
                return self._send(201, b"", "application/octet-stream")
            if self.command == "POST" and path.endswith("/messages"):
                status = self._ingestion_status()
                if status != 201 and status != 200:
                    return self._send(status, b"<Error/>", "application/xml")
                return self._queued(body, auth)
            return self._send(404, {"error": path})

        def _queued(self, body: bytes, auth: str | None) -> None:
            text = body.decode()
            encoded = text.split("<MessageText>")[1].split("</MessageText>")[0]
            message = json.loads(base64.b64decode(encoded))
            blob = urlsplit(message["BlobPath"]).path.rsplit("/", 1)[1]
            with fake.lock:
                data = fake.blobs[blob]
                rows = _rows(gzip.decompress(data) if blob.endswith(".gz") else data)
                fake.ingestions.append(
                    Ingestion(
                        "queued",
                        message["DatabaseName"],
                        message["TableName"],
                        message.get("AdditionalProperties", {}).get("authorizationContext"),
                        rows,
                        message.get("AdditionalProperties", {}),
                    )
                )
            now = "Mon, 01 Jan 2024 00:00:00 GMT"
            xml = (
                '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage>'
                f"<MessageId>{uuid.uuid4()}</MessageId><InsertionTime>{now}</InsertionTime>"
                f"<ExpirationTime>{now}</ExpirationTime><PopReceipt>p</PopReceipt>"
                f"<TimeNextVisible>{now}</TimeNextVisible></QueueMessage></QueueMessagesList>"
            )
            self._send(201, xml.encode(), "application/xml")

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    return Handler


def _self_signed(folder: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@contextmanager
def serve_fake_kusto(folder: Path) -> Iterator[FakeKusto]:
    """The fake on ``https://127.0.0.1:PORT``, its certificate written under ``folder``."""
    cert_file, key_file = _self_signed(folder)
    fake = FakeKusto(ca_file=cert_file)
    server = LoopbackHTTPServer(("127.0.0.1", 0), _handler(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        server.shutdown()
        server.server_close()
