"""The Wagtail test site served for real (tests/it/referee_wagtail.rs):
the same apps and templates as the tests, on a database file, telling the
kiln daemon at $KILN_URL about changes."""
import os

from tests_wagtail.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["KILN_WAGTAIL_DB"]}}
KILN = {**KILN, "url": os.environ.get("KILN_URL", "")}  # noqa: F405
WAGTAILADMIN_BASE_URL = os.environ.get("KILN_WAGTAIL_PUBLIC", "http://127.0.0.1")
# The site's own page template (a menu, the children) before Wagtail's
# built-in welcome page: project templates come first.
TEMPLATES = [{**TEMPLATES[0], "DIRS": [os.path.join(os.path.dirname(__file__), "blog", "templates")]}]  # noqa: F405
