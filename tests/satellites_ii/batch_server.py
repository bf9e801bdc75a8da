"""A real OpenAI-compatible Batch API server on 127.0.0.1: llama-stack's reference batches
provider (``/v1/files``, ``/v1/batches``) with local files and SQLite, in front of the test
``llama-server`` (tiny_llama.py).

llama-stack needs Python >= 3.12 and pins its own FastAPI/OpenTelemetry stack, which would clash
with Dagster's pins, so it lives in its OWN virtual environment under
``~/.cache/exosphere-dagster/llama-stack-<version>`` (``python tiny_llama.py build`` creates it,
after llama-server; about a minute from the registry), never in the project's venv. Tests talk
to it only over HTTP.

What the reference provider does, as read from its source (0.7.3) and seen in these tests:
``completion_window`` must be ``24h``; a batch is validated (model, endpoint, JSON lines), then
its requests run ``max_concurrent_requests_per_batch`` at a time against llama-server; output
and error files are written only when the whole batch is done; a request the inference server
refuses becomes an error-file line ``{"custom_id", "error": {"type", "message"}}``; cancel
stops the processing task (status ``cancelling`` -> ``cancelled``). Batches left running when
the server stops are not resumed by a restarted server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tiny_llama import CACHE, free_port

LLAMA_STACK = "0.7.3"
VENV = CACHE / f"llama-stack-{LLAMA_STACK}"
REQUIREMENTS = (f"llama-stack=={LLAMA_STACK}", "mcp<2")  # 0.7.3 imports McpError (gone in 2.x)
READY = VENV / ".exosphere-complete"  # written last: a half-built venv is never used
MODEL = "tiny"

MISSING = (
    f"llama-stack {LLAMA_STACK} is not installed in its own venv ({VENV}): run "
    "`python tests/satellites_ii/tiny_llama.py build` once (CI's .ci/run does); it needs a "
    "Python >= 3.12 interpreter (python3.12 or python3.13 on PATH, or a pyenv version)"
)


def find_llama_stack() -> Path | None:
    """The ``llama`` CLI of the cached venv, when that venv was built completely."""
    cli = VENV / "bin" / "llama"
    return cli if READY.is_file() and cli.is_file() else None


def _python312() -> str | None:
    """A Python >= 3.12 to build the venv with (llama-stack's own requirement)."""
    if sys.version_info >= (3, 12):
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13")]
    candidates += sorted(map(str, pyenv.glob("3.1[2-9]*/bin/python3")))
    for path in filter(None, candidates):  # a pyenv shim exists but may refuse to run
        if subprocess.run([path, "-c", "0"], capture_output=True).returncode == 0:
            return path
    return None


def build_llama_stack() -> Path | None:
    """Install llama-stack from the package registry into its own venv in the cache. Without a
    Python >= 3.12 on the machine it says so and returns None (the batch tests then skip with
    that reason) rather than stop the test command line."""
    if (cli := find_llama_stack()) is not None:
        return cli
    python = _python312()
    if python is None:
        print(f"warning: {MISSING}", file=sys.stderr)
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "VIRTUAL_ENV")}
    if VENV.exists():  # an interrupted build: start again from nothing
        shutil.rmtree(VENV)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *REQUIREMENTS],
        check=True, env=env,
    )  # fmt: skip
    probe = "import llama_stack.providers.inline.batches.reference, aiosqlite, openai"
    subprocess.run([str(VENV / "bin" / "python"), "-c", probe], check=True, env=env)
    READY.write_text(LLAMA_STACK)
    return VENV / "bin" / "llama"


def run_config(inference_url: str, folder: Path, port: int, *, requests_per_batch: int) -> str:
    """A minimal llama-stack distribution: inference (llama-server), files, batches."""
    return f"""\
version: 2
distro_name: exosphere-batches
apis: [batches, files, inference]
providers:
  inference:
  - provider_id: llama-cpp
    provider_type: remote::llama-cpp-server
    config: {{base_url: "{inference_url}"}}
  files:
  - provider_id: localfs
    provider_type: inline::localfs
    config:
      storage_dir: {folder / "files"}
      metadata_store: {{table_name: files_metadata, backend: sql_default}}
  batches:
  - provider_id: reference
    provider_type: inline::reference
    config:
      kvstore: {{namespace: batches, backend: kv_default}}
      max_concurrent_batches: 4
      max_concurrent_requests_per_batch: {requests_per_batch}
storage:
  backends:
    kv_default: {{type: kv_sqlite, db_path: {folder / "kvstore.db"}}}
    sql_default: {{type: sql_sqlite, db_path: {folder / "sql_store.db"}}}
  stores:
    metadata: {{namespace: registry, backend: kv_default}}
    inference: {{table_name: inference_store, backend: sql_default}}
    conversations: {{table_name: openai_conversations, backend: sql_default}}
    prompts: {{namespace: prompts, backend: kv_default}}
    connectors: {{namespace: connectors, backend: kv_default}}
registered_resources:
  models:
  - {{model_id: {MODEL}, provider_id: llama-cpp, provider_model_id: {MODEL}, model_type: llm}}
server: {{host: 127.0.0.1, port: {port}}}
"""


@contextlib.contextmanager
def batch_server(
    inference_url: str, folder: Path, *, requests_per_batch: int = 8,
    startup_timeout: float = 120.0,
) -> Iterator[str]:  # fmt: skip
    """Run llama-stack on 127.0.0.1 in front of ``inference_url``; yield its ``/v1`` base URL.
    Its log is ``folder/llama-stack.log``."""
    import httpx

    cli = find_llama_stack()
    if cli is None:
        raise FileNotFoundError(MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "run.yaml"
    config.write_text(
        run_config(inference_url, folder, port, requests_per_batch=requests_per_batch)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_", "PYTHON"))}
    env["LLAMA_STACK_LOGGING"] = "all=warning"
    with (folder / "llama-stack.log").open("ab") as sink:
        process = subprocess.Popen(
            [str(cli), "stack", "run", str(config), "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                tail = (folder / "llama-stack.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"llama-stack exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama-stack did not answer on {url} in {startup_timeout}s")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def list_batches(base_url: str) -> list[dict]:
    """Every batch the server knows, newest first (``GET /v1/batches``, all pages)."""
    import httpx

    batches: list[dict] = []
    after = None
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        page = httpx.get(f"{base_url}/batches", params=params, timeout=30).json()
        batches.extend(page["data"])
        if not page.get("has_more"):
            return batches
        after = page["last_id"]


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        print(build_llama_stack())
    else:
        sys.exit("usage: batch_server.py build")
