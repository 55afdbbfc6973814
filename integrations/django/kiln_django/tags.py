"""Tag names: one spelling for what views set and what signals invalidate.

A model instance is `app_label.model:pk` (`blog.post:42`), a model or
queryset is `app_label.model` (`blog.post`), a related manager's queryset
is `app_label.model@field:pk` (`blog.comment@post:42`), a string is itself.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Model, QuerySet


def model_tag(model: type[Model] | Model) -> str:
    """`blog.post` for the Post model (or an instance of it)."""
    meta = model._meta
    return f"{meta.app_label}.{meta.model_name}"


def queryset_tags(qs: QuerySet) -> list[str]:
    """A related manager's queryset (`post.comment_set.all()`, also
    filtered) is the parent's children: `blog.comment@post:42`, so one new
    comment refreshes the pages of its post, not every page that lists
    comments. Any other queryset is the model: `blog.comment`."""
    known = getattr(qs, "_known_related_objects", None) or {}
    tags = [f"{model_tag(qs.model)}@{field.name}:{pk}" for field, parents in known.items() for pk in parents]
    return tags or [model_tag(qs.model)]


def tags_for(thing: Any) -> list[str]:
    """The tags an object, model, queryset or string stands for."""
    if isinstance(thing, str):
        return [thing] if thing.strip() and not any(c.isspace() for c in thing) else []
    if isinstance(thing, Model):
        return [f"{model_tag(thing)}:{thing.pk}"]
    if isinstance(thing, QuerySet):
        return queryset_tags(thing)
    if isinstance(thing, type) and issubclass(thing, Model):
        return [model_tag(thing)]
    if isinstance(thing, Iterable):
        out: list[str] = []
        for t in thing:
            out.extend(tags_for(t))
        return out
    raise TypeError(f"kiln_django cannot tag {thing!r}: pass a model instance, model, queryset or string")
