"""Loopback HTTP servers for tests, sized for what tests send at them.

The standard library's ``socketserver.TCPServer`` listens with a backlog of 5: a test that
opens 20 connections at once (a satellite at ``concurrency: 32`` with ``retries: 0``) finds the
accept queue full on a loaded machine and fails. Every test HTTP server goes through
:func:`serve_http`, whose backlog holds the largest burst a satellite may send (its
``concurrency`` is at most 1024), and :func:`listen_backlog` reads the backlog back from the
kernel, so a test checks the socket itself rather than an attribute.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BURST = 1024  # the largest `concurrency:` a satellite accepts: connections at once


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds ``MAX_BURST`` connections."""

    request_queue_size = MAX_BURST
    daemon_threads = True


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port in a thread; yields ``http://127.0.0.1:PORT``."""
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def listen_backlog(port: int) -> int:
    """The accept-queue capacity the kernel gave the socket listening on 127.0.0.1:``port``
    (Linux ``TCP_INFO`` of a listener: ``tcpi_sacked``), found through ``/proc/net/tcp``."""
    inode = _listener_inode(port)
    for fd in _own_fds():
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.family == socket.AF_INET and _inode_of(fd) == inode:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
                return struct.unpack_from("I", info, 28)[0]
        finally:
            sock.detach()
    raise LookupError(f"no socket of this process listens on port {port}")


def _listener_inode(port: int) -> str:
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:  # 0A: LISTEN
                return inode
    raise LookupError(f"nothing listens on port {port}")


def _own_fds() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/fd")]


def _inode_of(fd: int) -> str:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
    return target.removeprefix("socket:[").removesuffix("]")
