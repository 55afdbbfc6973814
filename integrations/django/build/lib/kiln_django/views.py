"""A CSRF failure view that says which page the form came from: a form
broken by a stale or mis-baked page shows up in the logs, not in complaints.

`CSRF_FAILURE_VIEW = "kiln_django.views.csrf_failure"`
"""
from __future__ import annotations

import logging
import threading
from collections import Counter

from django.http import HttpRequest, HttpResponse
from django.views.csrf import csrf_failure as django_csrf_failure

log = logging.getLogger("kiln_django.csrf")

#: Failures by the page the form was on (the Referer), in this process.
FAILURES: Counter[str] = Counter()
_lock = threading.Lock()


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Logs and counts the failure, then answers as Django would."""
    page = request.headers.get("Referer", "(no referer)")
    with _lock:
        FAILURES[page] += 1
        count = FAILURES[page]
    log.warning(
        "CSRF failure posting to %s from page %s (%d so far from that page): %s",
        request.path,
        page,
        count,
        reason,
    )
    return django_csrf_failure(request, reason=reason)
