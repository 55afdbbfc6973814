"""kiln for Django: name what each page shows, tell kiln when it changes.

- `tag(request, *things)` adds dependency tags to the response being built
  (the `KilnMiddleware` writes them into the `Surrogate-Key` header); generic
  `DetailView` / `ListView` pages and `{% kiln_tags %}` tag themselves.
- `notify(targets)` sends kiln targets once the current transaction commits
  (everything one transaction changes goes in one request); models listed in
  `KILN["models"]` notify on save, delete and m2m changes.
- `KilnManager` / `KilnQuerySet` make `update()`, `bulk_create()` and
  `bulk_update()` notify too (Django sends them no signals); `changed(...)`
  is for writes Django cannot see (raw SQL).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from . import conf
from .queryset import KilnManager, KilnQuerySet
from .tags import model_tag, tags_for
from .transport import sender

__all__ = ["KilnManager", "KilnQuerySet", "changed", "flush", "model_tag", "notify", "tag", "tags_for"]

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
    page is never fetched before its data is committed. Everything one
    transaction notifies is sent together, right after its commit."""
    if not conf.get("enabled"):
        return
    targets = list(targets)
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        # Autocommit: the write is committed already.
        sender.add(targets)
        return
    batch = getattr(connection, "_kiln_batch", None)
    queued = batch is not None and any(entry[1] == batch.send for entry in connection.run_on_commit)
    if not queued:
        batch = _Batch()
        connection._kiln_batch = batch
        transaction.on_commit(batch.send, using=using)
    assert batch is not None
    batch.targets.update(dict.fromkeys(targets))


class _Batch:
    """The targets of one transaction, sent by its on-commit callback."""

    def __init__(self) -> None:
        self.targets: dict[str, None] = {}

    def send(self) -> None:
        sender.add(list(self.targets))


def changed(*things: Any, using: str | None = None) -> None:
    """Regenerates the pages of model instances, querysets (their rows, with
    their parents) or models (their lists) after a write Django sends no
    signal for, such as raw SQL, once the transaction commits."""
    from django.db.models import Model, QuerySet

    from .signals import targets_for, targets_for_rows

    targets: list[str] = []
    for thing in things:
        if isinstance(thing, Model):
            targets.extend(targets_for(thing))
        elif isinstance(thing, QuerySet):
            targets.extend(targets_for_rows(thing))
        elif isinstance(thing, type) and issubclass(thing, Model):
            targets.append(f"tag:{model_tag(thing)}")
        elif isinstance(thing, Iterable) and not isinstance(thing, str):
            for t in thing:
                changed(t, using=using)
        else:
            raise TypeError(f"kiln_django.changed cannot tell what {thing!r} is: pass model instances, querysets or models")
    if targets:
        notify(dict.fromkeys(targets), using=using)


def flush() -> None:
    """Sends what is queued now (management commands, tests)."""
    sender.flush()
