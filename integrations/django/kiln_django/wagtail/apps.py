"""The app `"kiln_django.wagtail"` in INSTALLED_APPS installs: it connects
Wagtail's publish, unpublish, move and delete signals and the snippets of
`KILN["snippets"]`. (A plain module there would get Django's default
AppConfig, which connects nothing: this package's `apps` is what Django
looks for.)"""
from __future__ import annotations

from django.apps import AppConfig


class KilnWagtailConfig(AppConfig):
    default = True
    name = "kiln_django.wagtail"
    label = "kiln_wagtail"
    verbose_name = "kiln for Wagtail"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_delete, post_save, pre_delete
        from wagtail.models import Page
        from wagtail.signals import page_published, page_unpublished, post_page_move

        from .. import capture, conf
        from ..signals import _changed
        from . import _deleted, _moved, _published

        page_published.connect(_published, dispatch_uid="kiln_wagtail:published")
        page_unpublished.connect(_published, dispatch_uid="kiln_wagtail:unpublished")
        post_page_move.connect(_moved, dispatch_uid="kiln_wagtail:moved")
        # Every page class: a delete is sent for the specific class too.
        for model in [Page, *[m for m in apps.get_models() if issubclass(m, Page) and m is not Page]]:
            pre_delete.connect(_deleted, sender=model, dispatch_uid=f"kiln_wagtail:deleted:{model._meta.label}")
        # Reads of any page (a menu, a related page) and of a snippet tag
        # the page that shows them.
        capture.watch({m._meta.label_lower for m in apps.get_models() if issubclass(m, Page)})
        capture.watch({label.lower() for label in conf.get("snippets")})
        for label in conf.get("snippets"):
            model = apps.get_model(label)
            post_save.connect(_changed, sender=model, dispatch_uid=f"kiln_wagtail:snippet:{label}")
            post_delete.connect(_changed, sender=model, dispatch_uid=f"kiln_wagtail:snippet-delete:{label}")
