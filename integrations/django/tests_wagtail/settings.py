"""A small Wagtail site for kiln_django.wagtail's tests: a home page, a blog
index listing its posts, posts with tags, an author snippet."""
SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "wagtail",
    "wagtail.users",
    "wagtail.images",
    "wagtail.documents",
    "wagtail.snippets",
    "wagtail.admin",
    "wagtail.sites",
    "wagtail.contrib.routable_page",
    "taggit",
    "modelcluster",
    "kiln_django",
    "kiln_django.wagtail",
    "tests_wagtail.blog",
]
MIDDLEWARE = [
    "kiln_django.middleware.KilnMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests_wagtail.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
WAGTAIL_SITE_NAME = "kiln test"
WAGTAILADMIN_BASE_URL = "http://testserver"
KILN = {"url": "", "snippets": ["blog.Author", "wagtailimages.Image"], "check_urls": []}
MEDIA_ROOT = "/tmp/kiln-wagtail-test-media"
STATIC_URL = "/static/"
