"""Test HTTP servers hold the bursts tests send: the recorder's and moto's listen backlogs, read
back from the kernel, and 200 requests at once, each sent once, all answered."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from http_servers import MAX_BURST, listen_backlog

BURST = 200


def test_the_recorder_listens_with_a_backlog_for_the_largest_burst(
    http_recorder: Any,
) -> None:
    assert listen_backlog(urlsplit(http_recorder.url).port or 0) == MAX_BURST


def test_moto_listens_with_more_than_the_s3_clients_open(moto_server: str) -> None:
    """werkzeug's backlog (128) against our S3 clients' pool (32 connections per client)."""
    from satellite_ops.helpers.s3_client import s3_client

    pool = s3_client(endpoint_url=moto_server).meta.config.max_pool_connections
    assert listen_backlog(urlsplit(moto_server).port or 0) >= 4 * pool


def test_a_burst_of_requests_sent_once_is_answered_in_full(http_recorder: Any) -> None:
    """Every thread opens its connection before any sends (a barrier): no retries."""
    barrier = threading.Barrier(BURST)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        try:
            barrier.wait()
            request = urllib.request.Request(f"{http_recorder.url}/burst/{index}", data=b"{}")
            with urllib.request.urlopen(request, timeout=120) as answer, lock:
                statuses.append(answer.status)
        except BaseException as exc:  # noqa: BLE001 - collected, asserted below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses == [200] * BURST
    assert sorted(r.path for r in http_recorder.requests) == sorted(
        f"/burst/{i}" for i in range(BURST)
    )
