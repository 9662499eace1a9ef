"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

    with FakeLlm() as fake:
        fake.queue(fake.picks([{"start": 1, "end": 2, "relevance": 0.9, "reason": "x"}],
                              usage=(100, 20)))
        settings = Settings(llm_base_url=fake.base_url, llm_model="m")
        ...
        fake.requests[0]["body"]   # every request body (parsed JSON), headers, path

Replies are served from a queue (``queue``); when it is empty, ``default`` is used (a
``{"picks": []}`` answer unless changed). A reply may also be a callable taking the
request body, so a test can answer from what was sent (``echo``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {
        "Content-Type": "application/json"})


Responder = Reply | Callable[[dict[str, Any]], Reply]


def completion(content: str, usage: tuple[int, int] | None = (10, 5),
               model: str = "fake-model") -> dict[str, Any]:
    """An OpenAI chat-completion envelope around ``content``; ``usage=None``: no usage."""
    reply: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    }
    if usage is not None:
        reply["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                          "total_tokens": usage[0] + usage[1]}
    return reply


class FakeLlm:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._queue: list[Responder] = []
        self.default: Responder = self.picks([])
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "headers": dict(self.headers.items())})
                    responder = fake._queue.pop(0) if fake._queue else fake.default
                if self.path.rstrip("/") != "/v1/chat/completions":
                    responder = Reply(404, b'{"error": "not found"}')
                reply = responder(body) if callable(responder) else responder
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeLlm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    # ------------------------------------------------------------------ behaviours

    def queue(self, *replies: Responder) -> None:
        with self._lock:
            self._queue.extend(replies)

    @staticmethod
    def json(obj: Any, status: int = 200) -> Reply:
        return Reply(status, json.dumps(obj).encode())

    @classmethod
    def content(cls, content: str, usage: tuple[int, int] | None = (10, 5)) -> Reply:
        """A 200 completion whose message content is ``content`` (any text)."""
        return cls.json(completion(content, usage))

    @classmethod
    def picks(cls, picks: list[Any], usage: tuple[int, int] | None = (10, 5)) -> Reply:
        """A well-formed answer ``{"picks": picks}`` with the given usage."""
        return cls.content(json.dumps({"picks": picks}), usage)

    @staticmethod
    def status(code: int, text: str = "fake error") -> Reply:
        return Reply(code, json.dumps({"error": {"message": text}}).encode())

    @staticmethod
    def raw(body: bytes, status: int = 200) -> Reply:
        """A body sent as is (e.g. not JSON at all)."""
        return Reply(status, body, {"Content-Type": "text/plain"})

    @classmethod
    def echo(cls, make: Callable[[dict[str, Any]], list[Any]],
             usage: tuple[int, int] | None = (10, 5)) -> Callable[[dict[str, Any]], Reply]:
        """Answer with the picks ``make(request_body)`` returns (e.g. an "obedient"
        model that follows instructions found in the transcript)."""
        return lambda body: cls.picks(make(body), usage)
