"""The two halves of the kiln integration.

1. `surrogate_keys(...)`: a view decorator that names what a page shows in a
   `Surrogate-Key` header. kiln stores these tags in its index.
2. `notify(targets)`: tells kiln that content changed, after the transaction
   commits, through the daemon's HTTP endpoint or a durable spool file
   (`kiln enqueue`). kiln then regenerates exactly the pages carrying the tag.
"""
import json
import logging
import subprocess
import urllib.request
from functools import wraps

from django.conf import settings
from django.db import transaction

log = logging.getLogger("blog.kiln")


def add_surrogate_keys(response, keys):
    """Names what `response` shows, for kiln's dependency index."""
    existing = response.get("Surrogate-Key", "").split()
    response["Surrogate-Key"] = " ".join(dict.fromkeys(existing + list(keys)))
    return response


def surrogate_keys(keys_for):
    """Decorator: `keys_for(request, response, **kwargs)` returns tag names."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.status_code == 200:
                add_surrogate_keys(response, keys_for(request, response, **kwargs))
            return response

        return wrapper

    return decorator


def _send(targets):
    if settings.KILN_REGEN_URL:
        req = urllib.request.Request(
            settings.KILN_REGEN_URL,
            data=json.dumps({"targets": targets}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if settings.KILN_TOKEN:
            req.add_header("Authorization", f"Bearer {settings.KILN_TOKEN}")
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                log.info("kiln accepted %s: %s", targets, resp.read().decode())
                return
        except OSError as e:
            log.warning("kiln HTTP endpoint unreachable (%s); falling back to the spool", e)
    if settings.KILN_BIN:
        # A spool file survives a daemon restart: nothing is lost.
        subprocess.run(
            [settings.KILN_BIN, "--config", settings.KILN_CONFIG, "-q", "enqueue", *targets],
            check=True,
            timeout=10,
        )
        log.info("queued for kiln: %s", targets)
    elif not settings.KILN_REGEN_URL:
        log.warning("kiln is not configured (KILN_REGEN_URL / KILN_BIN); %s not sent", targets)


def notify(targets):
    """Regenerate `targets` once the current transaction has committed."""
    transaction.on_commit(lambda: _send(list(targets)))
