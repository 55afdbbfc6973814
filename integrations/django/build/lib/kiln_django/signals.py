"""Model changes → kiln targets: `tag:app.model:pk` and `tag:app.model`,
sent when the transaction commits."""
from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from . import notify
from .tags import model_tag

DISPATCH_PREFIX = "kiln_django"


def targets_for(instance: Model) -> list[str]:
    """The page of the object and every list of its model."""
    return [f"tag:{model_tag(instance)}:{instance.pk}", f"tag:{model_tag(instance)}"]


def _changed(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    notify(targets_for(instance), using=using)


def _m2m_changed(sender: Any, instance: Model, action: str, model: type[Model], pk_set: Any, using: str | None = None, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
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
