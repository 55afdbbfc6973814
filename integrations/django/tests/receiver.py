"""A stand-in kiln daemon on loopback for kiln_django's tests: records every
POST /v1/regen and answers /v1/status."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A stand-in kiln daemon: records every POST /v1/regen and answers /v1/status."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(json.loads(body))
                outer.auth.append(self.headers.get("Authorization"))
                self._answer(202, {"job": len(outer.requests)})

            def do_GET(self) -> None:
                self._answer(
                    200,
                    {
                        "pages": {"ok": 3, "failed": 1},
                        "queue_depth": 0,
                        "pending_urls": 2,
                        "in_flight_urls": 1,
                        "retrying_urls": 1,
                        "problems": [{"url": "/x/", "status": "failed", "error": "answered 503"}],
                    },
                )

            def _answer(self, code: int, value: dict) -> None:
                data = json.dumps(value).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def targets(self) -> list[str]:
        return [t for r in self.requests for t in r["targets"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
