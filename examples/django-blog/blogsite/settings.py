"""Settings for the kiln example blog. Development settings: do not deploy as-is."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["blog"]

# No session or auth middleware: anonymous pages must not touch the session,
# or Django adds `Vary: Cookie` and kiln (rightly) refuses to bake them.
MIDDLEWARE = [
    "blog.middleware.ServedByDjangoMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "blogsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
WSGI_APPLICATION = "blogsite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BLOG_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# How the app tells kiln that content changed (see blog/kiln.py):
# - KILN_REGEN_URL: the daemon's HTTP endpoint, e.g. http://127.0.0.1:7878/v1/regen
#   (with KILN_TOKEN when the daemon requires one);
# - otherwise KILN_BIN (+ KILN_CONFIG): run `kiln enqueue`, which writes a spool file.
KILN_REGEN_URL = os.environ.get("KILN_REGEN_URL", "")
KILN_TOKEN = os.environ.get("KILN_TOKEN", "")
KILN_BIN = os.environ.get("KILN_BIN", "")
KILN_CONFIG = os.environ.get("KILN_CONFIG", str(BASE_DIR / "site.toml"))

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"blog": {"handlers": ["console"], "level": "INFO"}},
}
