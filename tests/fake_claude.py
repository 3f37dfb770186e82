"""A local HTTP server on loopback that speaks the Anthropic Messages API, for the real `anthropic` client.

`answer(request) -> str` writes each reply's text; `script` is a queue of canned failures
(status, headers, body) served before the next real answer. Every request is logged with its
body's SHA-256, and whether it was answered (paid) or refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


class FakeClaude:
    def __init__(self, answer: Callable[[dict[str, Any]], str] | None = None):
        self.answer = answer or (lambda req: "ok")
        self.script: deque[tuple[int, dict[str, str], str | None]] = deque()
        self.log: list[dict[str, Any]] = []
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, status: int, headers: dict[str, str] | None = None, body: str | None = None) -> None:
        self.script.append((status, headers or {}, body))

    def answered(self) -> list[str]:
        return [r["sha"] for r in self.log if r["status"] == 200]

    def __enter__(self) -> FakeClaude:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with fake.lock:
                    auth = self.headers.get("authorization", "").removeprefix("Bearer ")
                    fake.keys.add(self.headers.get("x-api-key") or auth)
                    failure = fake.script.popleft() if fake.script else None
                entry = {"path": self.path, "sha": hashlib.sha256(raw).hexdigest(), "body": json.loads(raw or b"{}")}
                if self.path.split("?")[0] != "/v1/messages":
                    failure = (404, {}, None)
                if failure is not None:
                    status, headers, body = failure
                    err = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                                      "message": f"fake {status}"}}
                    fake._logged(entry | {"status": status})  # before the reply: the client may look at once
                    self._send(status, body if body is not None else json.dumps(err), headers)
                    return
                req = entry["body"]
                try:
                    text = fake.answer(req)
                except Exception:  # noqa: BLE001 - the test drops this request: no reply, nothing paid
                    self.close_connection = True
                    fake._logged(entry | {"status": "dropped"})
                    return
                prompt = len(json.dumps(req.get("messages", []))) // 4
                reply = {"id": f"msg_{entry['sha'][:12]}", "type": "message", "role": "assistant",
                         "model": req.get("model"), "content": [{"type": "text", "text": text}],
                         "stop_reason": "end_turn", "stop_sequence": None,
                         "usage": {"input_tokens": prompt, "output_tokens": max(1, len(text) // 4)}}
                fake._logged(entry | {"status": 200})
                self._send(200, json.dumps(reply), {})

            def _send(self, status: int, body: str, headers: dict[str, str]) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _logged(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.log.append(entry)
