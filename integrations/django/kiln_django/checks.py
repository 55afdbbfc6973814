"""`manage.py check`: baked pages must be the same for every visitor."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from . import conf


@register(Tags.security)
def csrf_tokens_in_baked_pages(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """kiln.W001: a URL kiln bakes renders `{% csrf_token %}` for an
    anonymous visitor. kiln refuses such a page (it would hand one visitor's
    token to everyone), so it is never static; fetch the token with
    JavaScript from an endpoint kiln does not bake instead."""
    if not kwargs.get("databases"):
        # Fetching pages may query the database: only when the check run
        # allows it (`manage.py check --database default`, and the tests).
        return []
    from django.test import Client

    urls = sample_urls()
    if not urls:
        return []
    warnings = []
    client = Client(raise_request_exception=False)
    for url in urls:
        try:
            response = client.get(url)
        except Exception as e:  # noqa: BLE001  (a check must never crash the command)
            warnings.append(Warning(f"could not fetch {url} to check it for CSRF tokens: {e}", id="kiln.W002"))
            continue
        if response.status_code == 200 and b"csrfmiddlewaretoken" in response.content:
            warnings.append(
                Warning(
                    f"{url} renders {{% csrf_token %}} for anonymous visitors, so kiln will refuse to bake it",
                    hint="Render the form's token from JavaScript (fetch it from a view kiln does not bake), or exclude the URL from kiln's crawl.",
                    id="kiln.W001",
                )
            )
    return warnings


def sample_urls() -> list[str]:
    """`KILN["check_urls"]` and, for each model in `KILN["models"]` with a
    `get_absolute_url`, its newest object's page: the detail pages where a
    comment form's `{% csrf_token %}` hides, not only the home page."""
    from django.apps import apps

    urls = list(conf.get("check_urls"))
    for label in conf.get("models"):
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue  # kiln_django's own wiring reports a bad label
        if not hasattr(model, "get_absolute_url"):
            continue
        try:
            newest = model._default_manager.order_by("-pk").first()
        except DatabaseError:
            # Not migrated yet (`manage.py migrate` runs the checks first).
            continue
        if newest is not None:
            url = newest.get_absolute_url()
            if url not in urls:
                urls.append(url)
    return urls


@register()
def middleware_installed(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """kiln.W003: without the middleware, no page carries its tags."""
    if "kiln_django.middleware.KilnMiddleware" in getattr(settings, "MIDDLEWARE", []):
        return []
    return [
        Warning(
            "kiln_django.middleware.KilnMiddleware is not in MIDDLEWARE: pages will carry no Surrogate-Key tags",
            id="kiln.W003",
        )
    ]


@register()
def settings_are_known(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """kiln.E001: a key of `KILN` kiln_django does not know is a typo whose
    setting is silently not applied. kiln.W004: `KILN["url"]` names the
    API path instead of the daemon (it is used without it)."""
    found: list[Any] = []
    for key in conf.unknown_keys():
        close = [k for k in conf.DEFAULTS if k.replace("_", "") == key.replace("_", "").replace("-", "").lower()]
        found.append(
            Error(
                f"KILN[{key!r}] is not a kiln_django setting",
                hint=f"Did you mean {close[0]!r}?" if close else f"Known settings: {', '.join(sorted(conf.DEFAULTS))}.",
                id="kiln.E001",
            )
        )
    raw = str((getattr(settings, "KILN", {}) or {}).get("url", ""))
    if raw.rstrip("/").endswith(conf.API_PATH):
        found.append(
            Warning(
                f"KILN['url'] is {raw!r}: that is the API path; kiln_django uses {conf.daemon_base_url(raw)!r}",
                hint="Set KILN['url'] to the daemon's base URL, e.g. 'http://127.0.0.1:7878'.",
                id="kiln.W004",
            )
        )
    return found


#: The cookies kiln's nginx block sends to the app by default
#: (`safety.bypass-cookies`, owned by kiln: src/config/safety.rs), as
#: globs: a visitor carrying one never gets a baked page.
KILN_BYPASS_COOKIES = (
    "sessionid",
    "_session_id",
    "_*_session",
    "PHPSESSID",
    "wordpress_logged_in_*",
    "wp-postpass_*",
    "comment_author_*",
    "woocommerce_*",
    "wp_woocommerce_session_*",
    "messages",
)


@register(Tags.security)
def session_cookie_bypasses_baked_pages(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """kiln.W005: a session cookie kiln's nginx block does not know. A
    logged-in visitor carrying it would be served the anonymous baked
    page (no "log out" link, no admin bar, an empty cart)."""
    from fnmatch import fnmatchcase

    names = {"SESSION_COOKIE_NAME": getattr(settings, "SESSION_COOKIE_NAME", "sessionid")}
    found = []
    for setting, name in names.items():
        if any(fnmatchcase(name, glob) for glob in KILN_BYPASS_COOKIES):
            continue
        found.append(
            Warning(
                f"{setting} is {name!r}: kiln's nginx block does not send visitors carrying it to Django, "
                "so a logged-in visitor would get the anonymous baked pages",
                hint=f'List it in site.toml: [safety] bypass-cookies = ["{name}", "messages"] (then re-run `kiln nginx`); the list replaces kiln\'s defaults.',
                id="kiln.W005",
            )
        )
    return found
