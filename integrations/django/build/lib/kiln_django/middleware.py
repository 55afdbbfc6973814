"""`KilnMiddleware`: writes the tags collected while a response was built
into the `Surrogate-Key` header, tags generic views automatically, and can
drop a `Vary: Cookie` that an anonymous response does not need."""
from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from . import REQUEST_ATTR, conf, tag


class KilnMiddleware:
    """Put it first in `MIDDLEWARE`: it then sees the response after
    `SessionMiddleware` added `Vary: Cookie` (and the request after the
    session and user were attached)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        tags = getattr(request, REQUEST_ATTR, None)
        if tags and response.status_code == 200:
            header = conf.get("header")
            existing = response.get(header, "").split()
            response[header] = " ".join(dict.fromkeys([*existing, *tags]))
        if conf.get("drop_vary_cookie"):
            drop_unused_vary_cookie(request, response)
        return response

    def process_template_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """`DetailView` pages carry `app.model:pk`, `ListView` pages `app.model`."""
        context = getattr(response, "context_data", None) or {}
        obj = context.get("object")
        if isinstance(obj, Model):
            tag(request, obj)
        objects = context.get("object_list")
        if isinstance(objects, QuerySet):
            tag(request, objects)
        return response


def drop_unused_vary_cookie(request: HttpRequest, response: HttpResponse) -> None:
    """Removes `Cookie` from `Vary` when the response is what every visitor
    without a session gets: the visitor sent no session cookie, the session
    is empty and untouched, and the response sets no cookie. (Django adds
    `Vary: Cookie` as soon as anything, such as the auth context processor,
    looks at the session.)"""
    if request.COOKIES.get(settings.SESSION_COOKIE_NAME) or response.cookies:
        return
    session = getattr(request, "session", None)
    if session is not None and (session.modified or not session.is_empty()):
        return
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return
    vary = [v.strip() for v in response.get("Vary", "").split(",") if v.strip()]
    kept = [v for v in vary if v.lower() != "cookie"]
    if len(kept) == len(vary):
        return
    if kept:
        response["Vary"] = ", ".join(kept)
    else:
        del response["Vary"]
