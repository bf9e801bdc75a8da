"""A real OpenAI Batch API server on 127.0.0.1: llama-stack's reference batches provider, with
local files, in front of the test llama-server (tiny_llama.py).

llama-stack (PyPI ``llama-stack``) needs Python >= 3.12 and brings ~100 packages of its own,
so it lives in its own virtual environment under ``~/.cache/exosphere-dagster``, never in the
project's (``python tiny_llama.py build`` builds it, after llama-server; ~2 minutes). Its
reference provider is a complete Batch API: ``/v1/files`` uploads, ``/v1/batches`` create,
retrieve, list and cancel, output and error files; each row is one ``/v1/chat/completions``
call that llama-stack forwards to llama-server. Pausing llama-server (SIGSTOP) keeps a batch
``in_progress`` for as long as a test needs, without burning CPU.

``mcp<2``: llama-stack 0.7.3 imports ``McpError``, which mcp 2.x renamed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tiny_llama import CACHE, free_port, llama_server, wait_healthy

LLAMA_STACK = "0.7.3"
REQUIREMENTS = (f"llama-stack=={LLAMA_STACK}", "mcp<2")
VENV = CACHE / f"llama-stack-{LLAMA_STACK}"
READY = VENV / ".exosphere-complete"
MODEL = "llama-cpp/tiny"  # provider id / model id, as llama-stack names a registered model

CONFIG = """\
version: 2
distro_name: exosphere-batch-tests
apis: [batches, files, inference]
providers:
  inference:
  - provider_id: llama-cpp
    provider_type: remote::llama-cpp-server
    config: {{base_url: "{llama_url}"}}
  files:
  - provider_id: localfs
    provider_type: inline::localfs
    config:
      storage_dir: "{folder}/files"
      metadata_store: {{table_name: files_metadata, backend: sql_default}}
  batches:
  - provider_id: reference
    provider_type: inline::reference
    config:
      kvstore: {{namespace: batches, backend: kv_default}}
      max_concurrent_batches: 4
      max_concurrent_requests_per_batch: 8
storage:
  backends:
    kv_default: {{type: kv_sqlite, db_path: "{folder}/kvstore.db"}}
    sql_default: {{type: sql_sqlite, db_path: "{folder}/sql_store.db"}}
  stores:
    metadata: {{namespace: registry, backend: kv_default}}
    inference: {{table_name: inference_store, backend: sql_default}}
    conversations: {{table_name: openai_conversations, backend: sql_default}}
    prompts: {{namespace: prompts, backend: kv_default}}
    connectors: {{namespace: connectors, backend: kv_default}}
registered_resources:
  models:
  - {{model_id: tiny, provider_id: llama-cpp, provider_model_id: tiny, model_type: llm}}
server:
  port: {port}
"""


def find_llama_stack() -> Path | None:
    """The ``llama`` command of the built environment, or None."""
    command = VENV / "bin" / "llama"
    return command if READY.is_file() and command.is_file() else None


def _python312() -> str | None:
    """An interpreter llama-stack accepts (>= 3.12): on PATH, or one pyenv installed."""
    for name in ("python3.12", "python3.13"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
            return found
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for pattern in ("3.12*/bin/python3.12", "3.13*/bin/python3.13"):
        candidates = sorted(glob.glob(f"{root}/versions/{pattern}"))
        if candidates:
            return candidates[-1]
    return None


def build_llama_stack() -> Path:
    """Install llama-stack into its own venv in the cache (once per machine)."""
    if (found := find_llama_stack()) is not None:
        return found
    python = _python312()
    if python is None:
        sys.exit("llama-stack needs Python >= 3.12: none found on PATH or under pyenv")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "VIRTUAL_ENV")}
    log = CACHE / "llama-stack-install.log"
    with log.open("w") as sink:
        done = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", *REQUIREMENTS],
            stdout=sink, stderr=subprocess.STDOUT, env=env, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        sys.exit(f"installing llama-stack failed ({done.returncode}):\n" + "\n".join(tail))
    READY.write_text(LLAMA_STACK)
    return VENV / "bin" / "llama"


@dataclass
class BatchServer:
    """A running llama-stack (``url``: its ``/v1``) and the llama-server behind it."""

    url: str
    model: str
    llama: subprocess.Popen

    def pause_model(self) -> None:
        """Stop llama-server (SIGSTOP): batch rows wait, ``in_progress``, until resumed."""
        os.kill(self.llama.pid, signal.SIGSTOP)

    def resume_model(self) -> None:
        os.kill(self.llama.pid, signal.SIGCONT)

    def batches(self, **metadata: str) -> list[dict]:
        """Every batch the server knows (newest first) whose metadata holds ``metadata``."""
        import httpx

        found = httpx.get(f"{self.url}/batches", params={"limit": 100}, timeout=30).json()
        return [
            b
            for b in found["data"]
            if all((b.get("metadata") or {}).get(k) == v for k, v in metadata.items())
        ]

    def batch(self, batch_id: str) -> dict:
        import httpx

        return httpx.get(f"{self.url}/batches/{batch_id}", timeout=30).json()


@contextlib.contextmanager
def batch_server(
    model: Path, folder: Path, startup_timeout: float = 120.0
) -> Iterator[BatchServer]:
    """llama-server (4 slots) and llama-stack in front of it, both on 127.0.0.1."""

    command = find_llama_stack()
    if command is None:
        raise FileNotFoundError("llama-stack is not built: run `python tiny_llama.py build`")
    folder.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    with llama_server(
        model, parallel=4, log=folder / "llama-server.log", started=processes.append
    ) as llama_url:
        port = free_port()
        config = folder / "llama-stack.yaml"
        config.write_text(CONFIG.format(llama_url=llama_url, folder=folder, port=port))
        env = {**os.environ, "HOME": str(folder)}  # llama-stack writes under ~/.llama
        with (folder / "llama-stack.log").open("ab") as sink:
            stack = subprocess.Popen(
                [str(command), "stack", "run", str(config), "--port", str(port)],
                stdout=sink, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_healthy(stack, url, startup_timeout, f"llama-stack (log in {folder})")
            yield BatchServer(url=url, model=MODEL, llama=processes[0])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(processes[0].pid, signal.SIGCONT)
            stack.terminate()
            try:
                stack.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()


if __name__ == "__main__":
    print(build_llama_stack())
