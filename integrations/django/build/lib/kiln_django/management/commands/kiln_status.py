"""`manage.py kiln_status`: what the kiln daemon is doing."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ... import conf
from ...views import FAILURES


class Command(BaseCommand):
    help = "Show the kiln daemon's status (pages by state, queue, retries)"

    def handle(self, *args: Any, **options: Any) -> None:
        url = str(conf.get("url")).rstrip("/")
        if not url:
            raise CommandError("KILN['url'] is not set: there is no daemon to ask")
        req = urllib.request.Request(f"{url}/v1/status")
        token = conf.get("token")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=float(conf.get("timeout"))) as resp:
                status = json.load(resp)
        except (OSError, urllib.error.HTTPError) as e:
            raise CommandError(f"the kiln daemon at {url} did not answer: {e}") from e
        pages = ", ".join(f"{n} {s}" for s, n in sorted(status.get("pages", {}).items())) or "none"
        self.stdout.write(f"pages: {pages}")
        self.stdout.write(
            f"queue: {status.get('queue_depth', 0)} spool files, {status.get('pending_urls', 0)} URLs pending, "
            f"{status.get('in_flight_urls', 0)} in flight, {status.get('retrying_urls', 0)} retrying"
        )
        for p in status.get("problems", [])[:20]:
            self.stdout.write(f"  {p['status']} {p['url']}: {p['error']}")
        for page, n in FAILURES.most_common(10):
            self.stdout.write(f"  CSRF failures from {page}: {n}")
