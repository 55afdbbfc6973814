"""Settings for the kiln example blog. Development settings: do not deploy as-is."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.syndication",
    "kiln_django",
    "blog",
]

# A realistic stack: sessions, auth and the auth context processor (the "Log
# in" link in the header) make Django add `Vary: Cookie` to every page.
# kiln fetches without cookies, so that is the anonymous variant: it bakes
# it, and nginx sends visitors with a `sessionid` cookie to Django.
MIDDLEWARE = [
    "kiln_django.middleware.KilnMiddleware",
    "blog.middleware.ServedByDjangoMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
CSRF_FAILURE_VIEW = "kiln_django.views.csrf_failure"

ROOT_URLCONF = "blogsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
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

# How the app tells kiln that content changed (kiln_django): the daemon's
# HTTP endpoint, and its spool directory as the durable fallback.
KILN = {
    "url": os.environ.get("KILN_URL", ""),
    "token": os.environ.get("KILN_TOKEN", ""),
    "spool": os.environ.get("KILN_SPOOL", str(BASE_DIR / ".kiln" / "public" / "queue")),
    "models": ["blog.Post", "blog.Comment"],
    "check_urls": ["/", "/posts/1/"],
}
LOGIN_REDIRECT_URL = "/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "blog": {"handlers": ["console"], "level": "INFO"},
        "kiln_django": {"handlers": ["console"], "level": "INFO"},
    },
}
STATIC_URL = "/static/"
