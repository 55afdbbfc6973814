"""Wires `KILN["models"]` and the system checks when Django starts."""
from __future__ import annotations

from django.apps import AppConfig


class KilnConfig(AppConfig):
    name = "kiln_django"
    verbose_name = "kiln"

    def ready(self) -> None:
        from django.db.models.signals import post_init

        from . import capture, checks, conf, signals  # noqa: F401  (checks registers itself)

        signals.connect(list(conf.get("models")))
        capture.watch({label.lower() for label in conf.get("models")})
        post_init.connect(capture._read, dispatch_uid="kiln_django:capture")
