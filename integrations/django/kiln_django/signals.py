"""Model changes → kiln targets: `tag:app.model:pk` and `tag:app.model`,
sent when the transaction commits."""
from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from .tags import model_tag

DISPATCH_PREFIX = "kiln_django"


def targets_for(instance: Model) -> list[str]:
    """The page of the object, every list of its model, and the lists of it
    under each parent (`tag:blog.comment@post:42`: pages showing post 42's
    comments, tagged by `post.comment_set.all()`)."""
    return targets_for_row(type(instance), instance.pk, parent_values(instance))


def parent_values(instance: Model) -> dict[str, Any]:
    """The instance's foreign keys: field name → the parent's pk."""
    return {f.name: getattr(instance, f.attname) for f in parent_fields(type(instance))}


def parent_fields(model: type[Model]) -> list[Any]:
    """Forward foreign keys (and one-to-ones) of `model`."""
    return [f for f in model._meta.concrete_fields if f.is_relation and (f.many_to_one or f.one_to_one)]


def targets_for_rows(queryset: Any) -> list[str]:
    """Targets for the rows a queryset matches now (read in one query)."""
    fields = parent_fields(queryset.model)
    targets: list[str] = []
    for row in queryset.values("pk", *(f.attname for f in fields)):
        targets.extend(targets_for_row(queryset.model, row["pk"], {f.name: row[f.attname] for f in fields}))
    return targets


def targets_for_row(model: type[Model], pk: Any, parents: dict[str, Any]) -> list[str]:
    """Targets for one row, from its pk and its parents' pks."""
    name = model_tag(model)
    return [f"tag:{name}:{pk}", f"tag:{name}", *parent_targets(model, parents)]


def parent_targets(model: type[Model], parents: dict[str, Any]) -> list[str]:
    """The lists of `model` under each parent: `tag:blog.comment@post:42`."""
    name = model_tag(model)
    return [f"tag:{name}@{field}:{value}" for field, value in parents.items() if value is not None]


def _changed(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    from . import notify

    notify(targets_for(instance), using=using)


def _m2m_changed(sender: Any, instance: Model, action: str, model: type[Model], pk_set: Any, using: str | None = None, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
    from . import notify

    targets = targets_for(instance)
    # The other side shows this relation too.
    for pk in pk_set or ():
        targets.append(f"tag:{model_tag(model)}:{pk}")
    targets.append(f"tag:{model_tag(model)}")
    notify(targets, using=using)


def connect(model_labels: list[str]) -> None:
    """Wires save, delete and m2m changes of each `app_label.ModelName`."""
    for label in model_labels:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as e:
            raise ImproperlyConfigured(f"KILN['models'] names {label!r}, which is not a model: {e}") from e
        uid = f"{DISPATCH_PREFIX}:{label}"
        post_save.connect(_changed, sender=model, dispatch_uid=uid + ":save")
        post_delete.connect(_changed, sender=model, dispatch_uid=uid + ":delete")
        for field in model._meta.many_to_many:
            m2m_changed.connect(_m2m_changed, sender=field.remote_field.through, dispatch_uid=f"{uid}:m2m:{field.name}")
