"""Automatic dependency capture: while a `GET` or `HEAD` is answered, every
row of a watched model the view reads (a post, a Wagtail page in a menu, a
snippet in a footer) becomes a tag of the response, `app.model:pk` (Wagtail
pages `wagtail.page:<id>`), beside the tags views set themselves. A change
to any of those rows then regenerates the page, with no template edits.

Watched models are the ones whose changes notify kiln (`KILN["models"]`,
`KILN["snippets"]`, Wagtail's pages with `kiln_django.wagtail`): a tag
nothing would ever invalidate is only a longer header. `KILN["capture"] =
False` switches capture off; `KILN["capture_exclude"]` lists models not to
record ("blog.Comment"); past `KILN["capture_max_keys"]` rows on one page,
a model's rows collapse into its model tag (`blog.post`: any change to a
post regenerates the page), so the header stays bounded.

Rows are seen through Django's `post_init` signal, sent for every model
instance built from the database; outside a request being captured the
receiver returns at once.
"""
from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from django.db.models import Model

from . import conf
from .tags import model_tag

#: The keys of the response being built on this thread or task, if any.
_reading: ContextVar[_Reads | None] = ContextVar("kiln_django_reading", default=None)

#: Labels (`blog.post`) of the models whose reads become tags; set when
#: the apps are ready (`watch`).
_watched: set[str] = set()


class _Reads:
    """The rows one response read, bounded."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.keys: dict[str, None] = {}
        #: Models whose rows collapsed into their model tag.
        self.collapsed: set[str] = set()

    def add(self, model: str, key: str) -> None:
        if model in self.collapsed or key in self.keys:
            return
        if len(self.keys) >= self.max_keys:
            # One tag for the model stands for all its rows: drop the rows
            # already kept, keep the model.
            self.keys = {k: None for k in self.keys if not k.startswith(f"{model}:")}
            self.keys[model] = None
            self.collapsed.add(model)
            return
        self.keys[key] = None


def watch(labels: set[str]) -> None:
    """Records reads of these models (`app_label.modelname`, lower case)."""
    excluded = {label.lower() for label in conf.get("capture_exclude")}
    _watched.update(label.lower() for label in labels if label.lower() not in excluded)
    _kinds.clear()


def start() -> Token[_Reads | None] | None:
    """Starts recording for the current request; `None` when capture is off."""
    if not conf.get("capture") or not _watched:
        return None
    return _reading.set(_Reads(int(conf.get("capture_max_keys"))))


def finish(token: Token[_Reads | None] | None) -> list[str]:
    """Stops recording; the tags of what was read."""
    if token is None:
        return []
    reads = _reading.get()
    _reading.reset(token)
    return list(reads.keys) if reads is not None else []


def _read(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """`post_init`: a row was built. Cheap when nothing is recording, and
    one dict lookup per model when something is."""
    reads = _reading.get()
    if reads is None:
        return
    kind = _kinds.get(sender)
    if kind is None:
        kind = _kinds[sender] = _kind_of(sender)
    if kind is _UNWATCHED or instance.pk is None:
        return
    model, prefix = kind
    reads.add(model, f"{prefix}{instance.pk}")


#: A model whose rows are not recorded.
_UNWATCHED = ("", "")
#: Per model class: the tag that stands for all its rows and its rows'
#: prefix (`blog.post`, `blog.post:`), or `_UNWATCHED`.
_kinds: dict[type[Model], tuple[str, str]] = {}


def _kind_of(model: type[Model]) -> tuple[str, str]:
    label = model_tag(model)
    if label not in _watched:
        return _UNWATCHED
    if _is_wagtail_page(model):
        from .wagtail import PAGE_TAG

        return (PAGE_TAG, f"{PAGE_TAG}:")
    return (label, f"{label}:")


def _is_wagtail_page(model: type[Model]) -> bool:
    """A Wagtail page class, any of them (what kiln_django.wagtail notifies
    as `wagtail.page:<id>`)."""
    return hasattr(model, "get_ancestors") and any(f.name == "url_path" for f in model._meta.fields)
