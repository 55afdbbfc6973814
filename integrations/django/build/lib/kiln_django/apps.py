"""Wires `KILN["models"]` and the system checks when Django starts."""
from __future__ import annotations

from django.apps import AppConfig


class KilnConfig(AppConfig):
    name = "kiln_django"
    verbose_name = "kiln"

    def ready(self) -> None:
        from . import checks, conf, signals  # noqa: F401  (checks registers itself)

        signals.connect(list(conf.get("models")))
