"""`manage.py kiln_regen tag:blog.post:42 /about/`: regenerate now."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...transport import sender


class Command(BaseCommand):
    help = "Send kiln targets (/path/, tag:NAME, glob:PATTERN, delete:/path/, failed, all) to the daemon, or its spool"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("targets", nargs="+", metavar="TARGET")

    def handle(self, *args: Any, **options: Any) -> None:
        targets = [t.strip() for t in options["targets"] if t.strip()]
        bad = [t for t in targets if not (t.startswith(("/", "tag:", "glob:", "delete:")) or t in ("all", "failed"))]
        if bad:
            raise CommandError(f"not kiln targets: {', '.join(bad)} (use /path/, tag:NAME, glob:/PATTERN, delete:/path/, failed or all)")
        where = sender.deliver(targets)
        if where == "lost":
            raise CommandError("neither KILN['url'] nor KILN['spool'] could take the targets")
        place = {"http": "daemon", "redis": "stream"}.get(where, where)
        self.stdout.write(f"sent {len(targets)} target(s) to kiln ({place})")
