"""Fixtures for the docling and LLM satellites: a Dagster instance, generated PDFs, a real
llama.cpp server on 127.0.0.1 serving a tiny random model (see tiny_llama.py), and a real
Batch API server in front of another one (llama-stack, see batch_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_server import BatchServer, batch_server, find_llama_stack
from dagster import instance_for_test
from tiny_llama import find_llama_server, llama_server, write_tiny_model

LLAMA_SERVER_MISSING = (
    "llama-server is not built on this machine: run `python tests/model_satellites/tiny_llama.py "
    "build` once (CI's .ci/run does); it compiles llama.cpp from the llama-cpp-python sdist"
)
LLAMA_STACK_MISSING = (
    "llama-stack (the Batch API server) is not installed on this machine: run `python "
    "tests/model_satellites/tiny_llama.py build` once (CI's .ci/run does); it installs llama-stack "
    "into its own venv under ~/.cache/exosphere-dagster and needs a Python >= 3.12"
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


@pytest.fixture(scope="session")
def batch_api(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchServer]:
    """llama-stack's Batch API (``.url`` is its ``/v1``) in front of its own llama-server."""
    if find_llama_server() is None:
        pytest.skip(LLAMA_SERVER_MISSING)
    if find_llama_stack() is None:
        pytest.skip(LLAMA_STACK_MISSING)
    with batch_server(tiny_model, tmp_path_factory.mktemp("batch-api")) as server:
        yield server
