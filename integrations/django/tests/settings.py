"""Settings for kiln_django's own tests (real Django, a real HTTP receiver)."""
SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "kiln_django",
    "tests.testapp",
]
MIDDLEWARE = [
    # First: it sees the response after SessionMiddleware added `Vary: Cookie`.
    "kiln_django.middleware.KilnMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
CSRF_FAILURE_VIEW = "kiln_django.views.csrf_failure"
KILN = {
    "url": "",  # each test points it at its own receiver
    "models": ["testapp.Post", "testapp.Comment"],
    "check_urls": [],
}
