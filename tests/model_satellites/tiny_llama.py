"""A real OpenAI-compatible LLM server on CPU, offline: llama.cpp's ``llama-server`` serving a
tiny, randomly initialised Llama model that this module writes with the ``gguf`` package.

Nothing is downloaded at test time. ``llama-server`` is compiled once per machine from the
llama.cpp sources inside the ``llama-cpp-python`` sdist (``python tiny_llama.py build``, which
CI runs before pytest; ~12 minutes on 2 busy cores) and cached under ``~/.cache/exosphere-dagster``.
(The Python package's own server handles one request at a time, so it cannot show batching.)
``build`` also installs llama-stack, the Batch API server of the batch-mode tests, into its own
virtual environment (``batch_server.py``).
The weights are random, but tokenizer, chat template, continuous batching and grammar-
constrained JSON decoding are llama.cpp's own. The vocabulary holds every byte plus tokens that
end a JSON string (``a"``), so a random model closes strings quickly and answers stay short.

The server runs with ``--no-jinja``: on the jinja chat path llama.cpp re-parses a
``response_format`` answer with a PEG parser that rejects some answers its own grammar produced
(HTTP 500 "does not match the expected peg-native format"); the legacy template path returns
the constrained text as is. ``--threads 1`` by default: on a shared, oversubscribed 2-core
machine ggml's per-op thread barriers make single-sequence decoding ~10x slower with 2 threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"  # the sdist whose vendored llama.cpp we build
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "exosphere-dagster"
BINARY = CACHE / f"llama-server-{LLAMA_CPP_PYTHON}" / "llama-server"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def find_llama_server() -> Path | None:
    """``EXOSPHERE_LLAMA_SERVER``, the cached build, or ``llama-server`` on PATH."""
    for candidate in (
        os.environ.get("EXOSPHERE_LLAMA_SERVER"),
        BINARY,
        shutil.which("llama-server"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def build_llama_server(jobs: int = 2) -> Path:
    """Compile ``llama-server`` from the llama-cpp-python sdist (PyPI) into the cache."""
    if BINARY.is_file():
        return BINARY
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(folder)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        (sdist,) = folder.glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(folder, filter="data")
        source = next(folder.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = folder / "build"
        flags = [
            "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF",
            "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF",
            "-DLLAMA_USE_PREBUILT_UI=OFF",
        ]  # fmt: skip
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _quiet(["cmake", "-S", str(source), "-B", str(build), *generator, *flags])
        _quiet(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)])
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        staged = BINARY.with_suffix(".tmp")
        shutil.copy2(build / "bin" / "llama-server", staged)
        staged.replace(BINARY)
    return BINARY


def _quiet(command: list[str]) -> None:
    """Run a build step; its output goes to a log whose tail is shown only on failure."""
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "llama-server-build.log"
    with log.open("a") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        sys.exit(f"{' '.join(command[:3])}... failed ({done.returncode}):\n" + "\n".join(tail))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: every byte as one printable character."""
    visible = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    )
    chars = visible[:]
    extra = 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, map(chr, chars), strict=True))


def write_tiny_model(
    path: Path, *, n_embd: int = 128, n_layer: int = 2, n_head: int = 4, n_ff: int = 256,
    context: int = 4096, seed: int = 0,
) -> Path:  # fmt: skip
    """Write a random Llama GGUF with a byte-level BPE vocabulary and a ChatML template."""
    import gguf
    import numpy as np

    byte_chars = _bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    merges = []
    closers = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.-"
    for char in closers:  # tokens that end a JSON string: `a"`, ` "`, ...
        left = byte_chars[ord(char)]
        tokens.append(left + '"')
        types.append(gguf.TokenType.NORMAL)
        merges.append(f'{left} "')
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens += specials
    types += [gguf.TokenType.CONTROL] * len(specials)
    bos, eos = tokens.index("<|endoftext|>"), tokens.index("<|im_end|>")

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("exosphere-tiny-random")
    writer.add_context_length(context)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_eot_token_id(eos)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)

    rng = np.random.default_rng(seed)

    def weight(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    vocab = len(tokens)
    writer.add_tensor("token_embd.weight", weight(vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    # Small output weights keep the logits nearly flat: sampling stays close to uniform over
    # what the grammar allows, so strings end after a few tokens.
    writer.add_tensor("output.weight", weight(vocab, n_embd, scale=0.002))
    for layer in range(n_layer):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", weight(n_embd, n_embd))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(process: subprocess.Popen, url: str, timeout: float, what: str) -> None:
    """Wait until ``url/health`` answers 200; fail early when ``process`` exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer on {url} in {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def llama_server(
    model: Path, *, parallel: int = 8, ctx_per_slot: int = 2048, threads: int = 1,
    log: Path | None = None, startup_timeout: float = 60.0,
    started: Callable[[subprocess.Popen], object] | None = None,
) -> Iterator[str]:  # fmt: skip
    """Run ``llama-server`` on 127.0.0.1 with ``parallel`` slots; yield its ``/v1`` base URL.
    ``started`` gets the process (to pause it with SIGSTOP, say)."""

    binary = find_llama_server()
    if binary is None:
        raise FileNotFoundError(
            "llama-server is not built: run `python tests/model_satellites/tiny_llama.py build`"
        )
    port = free_port()
    command = [
        str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--parallel", str(parallel), "--ctx-size", str(parallel * ctx_per_slot),
        "--threads", str(threads), "--threads-batch", str(threads), "--cont-batching",
        "--no-webui", "--metrics", "--no-jinja", "--seed", "1",
    ]  # fmt: skip
    sink = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    if started is not None:
        started(process)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, startup_timeout, f"llama-server ({' '.join(command)})")
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None:
            sink.close()


def server_metrics(base_url: str) -> dict[str, float]:
    """llama-server's Prometheus counters (``--metrics``), e.g. ``n_busy_slots_per_decode``."""
    import httpx

    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:"):
            name, _, value = line.partition(" ")
            values[name.removeprefix("llamacpp:")] = float(value)
    return values


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        print(build_llama_server())
        from batch_server import build_llama_stack  # the Batch API in front of it (tests)

        try:
            print(build_llama_stack())
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - optional: its tests skip
            print(
                f"warning: llama-stack not built, the batch-mode tests will skip: {exc}",
                file=sys.stderr,
            )
    elif sys.argv[1:2] == ["model"] and len(sys.argv) == 3:
        print(write_tiny_model(Path(sys.argv[2])))
    else:
        sys.exit("usage: tiny_llama.py build | model PATH.gguf")
