"""Fixtures for the docling and LLM satellites: a Dagster instance, generated PDFs, a real
llama.cpp server on 127.0.0.1 serving a tiny random model (see tiny_llama.py), and a real Batch
API server (llama-stack) in front of another one (see batch_server.py)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from batch_server import MISSING as LLAMA_STACK_MISSING
from batch_server import batch_server, find_llama_stack, list_batches
from dagster import instance_for_test
from tiny_llama import SERVER_PIDS, find_llama_server, llama_server, write_tiny_model

LLAMA_SERVER_MISSING = (
    "llama-server is not built on this machine: run `python tests/satellites_ii/tiny_llama.py "
    "build` once (CI's .ci/run does); it compiles llama.cpp from the llama-cpp-python sdist"
)


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[object]:
    """A SQLite Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Llama GGUF written by the test session (1.6 MB, nothing downloaded)."""
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny-random.gguf")


@pytest.fixture(scope="session")
def llama_url(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``/v1`` base URL of a llama-server with 8 parallel slots on 127.0.0.1."""
    if find_llama_server() is None:
        pytest.skip(LLAMA_SERVER_MISSING)
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    with llama_server(tiny_model, parallel=8, log=log) as url:
        yield url


@dataclass
class BatchStack:
    """llama-stack's Batch API (``url``) in front of its own llama-server (``llama_pid``)."""

    url: str
    llama_url: str
    llama_pid: int
    folder: Path
    model: str = "llama-cpp/tiny"  # llama-stack's id: provider id / model id

    def batches(self) -> list[dict]:
        return list_batches(self.url)

    @contextlib.contextmanager
    def inference_paused(self) -> Iterator[None]:
        """Freeze llama-server (SIGSTOP): batches stay in progress until the block ends."""
        os.kill(self.llama_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.llama_pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def batch_stack(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchStack]:
    """A Batch API server process on 127.0.0.1 (llama-stack's reference batches provider,
    local files, SQLite) in front of a llama-server of its own with 4 slots."""
    if find_llama_server() is None:
        pytest.skip(LLAMA_SERVER_MISSING)
    if find_llama_stack() is None:
        pytest.skip(LLAMA_STACK_MISSING)
    folder = tmp_path_factory.mktemp("batch-api")
    with (
        llama_server(tiny_model, parallel=4, log=folder / "llama-server.log") as llama_url,
        batch_server(llama_url, folder / "llama-stack") as url,
    ):
        yield BatchStack(url, llama_url, SERVER_PIDS[llama_url], folder)
