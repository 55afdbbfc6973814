"""Bulk writes that tell kiln: Django sends no signal for `QuerySet.update()`,
`bulk_create()` or `bulk_update()`, so without this their pages stay stale.

    class Post(models.Model):
        objects = KilnManager()          # or: KilnQuerySet.as_manager()

Raw SQL and other writes Django cannot see: call `kiln_django.changed(...)`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from .signals import parent_fields, parent_targets, targets_for, targets_for_rows


class KilnQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes notify kiln when the transaction commits."""

    def update(self, **kwargs: Any) -> int:
        # The rows are read before the update: a filter on an updated field
        # would not find them after it. Their old parents too: a comment
        # moved to another post leaves the first one's page.
        targets = targets_for_rows(self)
        n = super().update(**kwargs)
        if n:
            # Where moved children went: the new parents' lists too.
            moved = {f.name: _pk_of(kwargs[key]) for f in parent_fields(self.model) for key in (f.name, f.attname) if key in kwargs}
            targets.extend(parent_targets(self.model, moved))
            _notify(targets, self.db)
        return n

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list[models.Model]:
        created = super().bulk_create(objs, *args, **kwargs)
        _notify([t for obj in created if obj.pk is not None for t in targets_for(obj)], self.db)
        if any(obj.pk is None for obj in created):
            # A backend that returns no pks: the model's lists at least.
            from .tags import model_tag

            _notify([f"tag:{model_tag(self.model)}"], self.db)
        return created

    def bulk_update(self, objs: Iterable[models.Model], fields: Any, *args: Any, **kwargs: Any) -> int:
        objs = list(objs)
        n = super().bulk_update(objs, fields, *args, **kwargs)
        _notify([t for obj in objs for t in targets_for(obj)], self.db)
        return n


#: A manager whose querysets notify kiln on bulk writes.
KilnManager = models.Manager.from_queryset(KilnQuerySet)


def _pk_of(value: Any) -> Any:
    return value.pk if isinstance(value, models.Model) else value


def _notify(targets: list[str], using: str) -> None:
    from . import notify

    if targets:
        notify(dict.fromkeys(targets), using=using)
