"""The `KILN` setting, with defaults, read at use (so tests can override it)."""
from __future__ import annotations

import os
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # The daemon's base URL (POST {url}/v1/regen). Empty: spool only.
    "url": os.environ.get("KILN_URL", ""),
    # A Redis URL: targets go to the stream every web host's daemon reads
    # (`[intake] redis`); needs `pip install kiln-django[redis]`.
    "redis": os.environ.get("KILN_REDIS", ""),
    # The stream (`[intake] stream`) and its approximate length bound.
    "stream": "kiln:events",
    "stream_max_len": 100000,
    # Bearer token; default from the environment variable the daemon reads.
    "token": os.environ.get("KILN_TOKEN", ""),
    # The daemon's spool directory (`[site] queue`, e.g. "/srv/site/.kiln/public/queue"):
    # the durable fallback when the daemon is down. Empty: no fallback.
    "spool": os.environ.get("KILN_SPOOL", ""),
    # Seconds to wait for the daemon before falling back to the spool.
    "timeout": 2.0,
    # 0: what a transaction changed is sent right after its commit, in one
    # request (nothing waits in memory). More: autocommit writes within this
    # many seconds are held and go in one request; a process killed inside
    # the window loses them (a graceful exit sends them).
    "batch_window": 0.0,
    # Most targets per request (the daemon's `daemon.max-targets` is 10,000).
    "max_targets_per_request": 5000,
    # "app_label.ModelName" whose saves and deletes notify kiln.
    "models": [],
    # With kiln_django.wagtail: snippet models ("app_label.ModelName") whose
    # changes regenerate the pages that tag them.
    "snippets": [],
    # Record the rows of watched models a GET reads as its tags
    # (kiln_django.capture): menus, related posts, footers and snippets
    # then regenerate with no template edits.
    "capture": True,
    # Models ("app_label.ModelName") whose reads are not recorded.
    "capture_exclude": [],
    # Most recorded rows per page; past it a model's rows become its model tag.
    "capture_max_keys": 200,
    # Response header kiln reads tags from (`[origin] tags-header`).
    "header": "Surrogate-Key",
    # Drop `Vary: Cookie` from anonymous responses that did not use the session.
    "drop_vary_cookie": False,
    # URLs the `kiln.W001` system check fetches anonymously for a CSRF token.
    "check_urls": ["/"],
    # Set False to switch notifications off (tests, data migrations).
    "enabled": True,
}


def get(name: str) -> Any:
    """One key of `settings.KILN`, or its default."""
    configured = getattr(settings, "KILN", {}) or {}
    value = configured.get(name, DEFAULTS[name])
    if name == "url":
        return daemon_base_url(str(value))
    return value


def unknown_keys() -> list[str]:
    """Keys of `settings.KILN` kiln_django does not know (a typo is a
    setting silently not applied)."""
    configured = getattr(settings, "KILN", {}) or {}
    return sorted(k for k in configured if k not in DEFAULTS)


#: What people paste from the docs' curl examples into `KILN["url"]`.
API_PATH = "/v1/regen"


def daemon_base_url(url: str) -> str:
    """The daemon's base URL: `http://127.0.0.1:7878/v1/regen` means
    `http://127.0.0.1:7878` (the `kiln.W004` check says so)."""
    url = url.rstrip("/")
    return url[: -len(API_PATH)] if url.endswith(API_PATH) else url
