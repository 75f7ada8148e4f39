"""A small HTTP proxy in front of a real Prometheus that misbehaves on demand (for fault tests).

`mode` picks the answer to the next requests: "pass" (forward), "error" (HTTP 503), "bad-query" (HTTP 400),
"timeout" (answer after `delay` seconds), "nan" / "inf" (every sample value replaced), "empty" (an empty vector),
"garbage" (not JSON). Counts every request it sees. With `bearer`, it answers 401 to a request without that
token, as a Prometheus behind an authenticating proxy does, and counts those apart.
"""

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultyProxy:
    def __init__(self, upstream: str, port: int, bearer: str | None = None) -> None:
        self.upstream, self.mode, self.delay, self.requests = upstream.rstrip("/"), "pass", 15.0, 0
        self.bearer, self.unauthorized = bearer, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests += 1
                if proxy.bearer is not None and self.headers.get("Authorization") != f"Bearer {proxy.bearer}":
                    proxy.unauthorized += 1
                    status, body = 401, b"Unauthorized"
                else:
                    status, body = proxy.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{port}"

    def answer(self, path: str) -> tuple[int, bytes]:
        mode = self.mode
        if mode == "error":
            return 503, b'{"status":"error","error":"injected: unavailable"}'
        if mode == "bad-query":
            return 400, b'{"status":"error","errorType":"bad_data","error":"injected: parse error"}'
        if mode == "garbage":
            return 200, b"<html>not json</html>"
        if mode == "timeout":
            time.sleep(self.delay)
        with urllib.request.urlopen(self.upstream + path, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
        result = body.get("data", {}).get("result", [])
        if mode == "empty":
            body["data"]["result"] = []
        elif mode in ("nan", "inf"):
            for sample in result:
                sample["value"][1] = "NaN" if mode == "nan" else "+Inf"
        return 200, json.dumps(body).encode()

    def stop(self) -> None:
        self.server.shutdown()
