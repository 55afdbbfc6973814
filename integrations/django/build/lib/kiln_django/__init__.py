"""kiln for Django: name what each page shows, tell kiln when it changes.

- `tag(request, *things)` adds dependency tags to the response being built
  (the `KilnMiddleware` writes them into the `Surrogate-Key` header); generic
  `DetailView` / `ListView` pages and `{% kiln_tags %}` tag themselves.
- `notify(targets)` sends kiln targets once the current transaction commits;
  models listed in `KILN["models"]` notify on save, delete and m2m changes.
"""
from __future__ import annotations

from typing import Any, Iterable

from django.db import transaction
from django.http import HttpRequest

from . import conf
from .tags import model_tag, tags_for
from .transport import sender

__all__ = ["tag", "notify", "flush", "model_tag", "tags_for"]

REQUEST_ATTR = "_kiln_tags"


def tag(request: HttpRequest, *things: Any) -> None:
    """Adds the tags of model instances, models, querysets or strings to the
    response for `request`."""
    tags: dict[str, None] = getattr(request, REQUEST_ATTR, None) or {}
    for t in things:
        tags.update(dict.fromkeys(tags_for(t)))
    setattr(request, REQUEST_ATTR, tags)


def notify(targets: Iterable[str], using: str | None = None) -> None:
    """Regenerates `targets` (`tag:blog.post:42`, `/about/`, ...) once the
    transaction commits; a rolled-back transaction sends nothing, and the
    page is never fetched before its data is committed."""
    if not conf.get("enabled"):
        return
    targets = list(targets)
    transaction.on_commit(lambda: sender.add(targets), using=using)


def flush() -> None:
    """Sends what is queued now (management commands, tests)."""
    sender.flush()
