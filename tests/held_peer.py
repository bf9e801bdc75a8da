"""A slow HTTP peer for log-sink tests: it holds every request until the test releases it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any


class HeldPeer:
    """An OTLP/HTTP peer that holds every request until ``release`` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.count = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer.count += 1
                peer.arrived.set()
                peer.release.wait()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
