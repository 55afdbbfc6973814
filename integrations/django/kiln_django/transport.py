"""Getting targets to the kiln daemon without losing any.

What a transaction changed is sent right after its commit, in one request
(`batch_window = 0`, the default), with the bearer token and a short
timeout. When the daemon cannot take it, it is written to the daemon's spool
directory in `kiln enqueue`'s format (a file in `tmp/`, synced, renamed into
`new/`), which the daemon reads at its next start. What is lost: a process
killed between its commit and that send; with `batch_window > 0`, also what
autocommit writes were holding for the window (a graceful exit sends it).
"""
from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from . import conf

log = logging.getLogger("kiln_django")

_seq = itertools.count()


class Sender:
    """Collects targets and sends them in batches; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, None] = {}
        self._timer: threading.Timer | None = None
        #: Requests made and spool files written, for tests and `kiln_status`.
        self.requests = 0
        self.spooled = 0

    def add(self, targets: Iterable[str]) -> None:
        """Queues targets; they are sent within `batch_window` seconds."""
        window = float(conf.get("batch_window"))
        with self._lock:
            self._pending.update(dict.fromkeys(targets))
            if window <= 0 or self._timer is not None:
                start_timer = False
            else:
                self._timer = threading.Timer(window, self.flush)
                self._timer.daemon = True
                start_timer = True
        if start_timer:
            assert self._timer is not None
            self._timer.start()
        elif window <= 0:
            self.flush()

    def flush(self) -> None:
        """Sends everything queued now."""
        with self._lock:
            targets = list(self._pending)
            self._pending.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        size = max(1, int(conf.get("max_targets_per_request")))
        for i in range(0, len(targets), size):
            self.deliver(targets[i : i + size])

    def deliver(self, targets: list[str]) -> str:
        """Sends one batch now: `"redis"`, `"http"` or `"spool"` for where it went."""
        if not targets:
            return "none"
        redis_url = str(conf.get("redis"))
        if redis_url:
            try:
                self._xadd(redis_url, targets)
                return "redis"
            except Exception as e:  # noqa: BLE001  (any client error: fall back, never lose the change)
                log.warning("kiln stream at %s did not take %d targets (%s); trying the next transport", redis_url, len(targets), e)
        url = str(conf.get("url")).rstrip("/")
        if url:
            try:
                self._post(url, targets)
                return "http"
            except (OSError, urllib.error.HTTPError) as e:
                log.warning("kiln daemon at %s did not take %d targets (%s); using the spool", url, len(targets), e)
        spool = conf.get("spool")
        if spool:
            path = write_spool_file(Path(spool), targets)
            self.spooled += 1
            log.info("queued %d targets for kiln in %s", len(targets), path)
            return "spool"
        log.error("kiln_django: neither KILN['url'] nor KILN['spool'] could take %d targets: %s", len(targets), targets[:5])
        return "lost"

    def _xadd(self, redis_url: str, targets: list[str]) -> None:
        try:
            import redis  # optional: pip install kiln-django[redis]
        except ImportError as e:
            raise RuntimeError("KILN['redis'] is set but the redis package is missing: pip install kiln-django[redis]") from e
        client = redis.Redis.from_url(redis_url, socket_timeout=float(conf.get("timeout")))
        try:
            client.xadd(
                str(conf.get("stream")),
                {"targets": "".join(f"{t}\n" for t in targets)},
                maxlen=int(conf.get("stream_max_len")),
                approximate=True,
            )
            self.requests += 1
        finally:
            client.close()

    def _post(self, url: str, targets: list[str]) -> None:
        req = urllib.request.Request(
            f"{url}/v1/regen",
            data=json.dumps({"targets": targets}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        token = conf.get("token")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=float(conf.get("timeout"))) as resp:
            self.requests += 1
            log.debug("kiln accepted %d targets: %s", len(targets), resp.read(200))


def write_spool_file(queue: Path, targets: list[str]) -> Path:
    """`kiln enqueue`: a file in `tmp/`, synced, renamed into `new/`."""
    tmp_dir, new_dir = queue / "tmp", queue / "new"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    new_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.{os.getpid()}.{next(_seq)}"
    tmp = tmp_dir / name
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(f"{t}\n" for t in targets))
        f.flush()
        os.fsync(f.fileno())
    final = new_dir / name
    os.rename(tmp, final)
    return final


sender = Sender()
atexit.register(sender.flush)
