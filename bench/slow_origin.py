#!/usr/bin/env python3
"""A stand-in for an app server: every page takes RENDER_MS to render (a
thread each, like a threaded WSGI server), every request is counted.
`GET /__count?/path/` answers how many requests /path/ got.

    python3 bench/slow_origin.py PORT [RENDER_MS]
"""
import collections
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = collections.Counter()
LOCK = threading.Lock()
RENDER_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 50


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/__count?"):
            with LOCK:
                body = str(COUNTS[self.path.split("?", 1)[1]]).encode()
        else:
            with LOCK:
                COUNTS[self.path] += 1
            time.sleep(RENDER_MS / 1000)
            body = f"<!doctype html><title>{self.path}</title><h1>{self.path}</h1><p>{'lorem ipsum ' * 300}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
