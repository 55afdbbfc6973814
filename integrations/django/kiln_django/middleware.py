"""`KilnMiddleware`: writes the tags collected while a response was built
into the `Surrogate-Key` header, tags generic views automatically, and can
drop a `Vary: Cookie` that an anonymous response does not need."""
from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from . import REQUEST_ATTR, capture, conf, tag


def _capturing(request: HttpRequest) -> Any:
    """Records the rows a page read (kiln_django.capture): for the pages
    kiln bakes, `GET` and `HEAD`."""
    return capture.start() if request.method in ("GET", "HEAD") else None


def _add_read(request: HttpRequest, read: list[str]) -> None:
    """The captured keys, well-formed already, after the view's own tags."""
    if read:
        tags: dict[str, None] = getattr(request, REQUEST_ATTR, None) or {}
        tags.update(dict.fromkeys(read))
        setattr(request, REQUEST_ATTR, tags)


class KilnMiddleware:
    """Put it first in `MIDDLEWARE`: it then sees the response after
    `SessionMiddleware` added `Vary: Cookie` (and the request after the
    session and user were attached). Sync and async: under ASGI it runs in
    the event loop, without a hop to a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        token = _capturing(request)
        try:
            response = self.get_response(request)
        finally:
            read = capture.finish(token)
        _add_read(request, read)
        return self.finish(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        token = _capturing(request)
        try:
            response = await self.get_response(request)
        finally:
            read = capture.finish(token)
        _add_read(request, read)
        return self.finish(request, response)

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Writes the tags; drops an unneeded `Vary: Cookie` when asked."""
        tags = getattr(request, REQUEST_ATTR, None)
        if tags and response.status_code == 200:
            header = conf.get("header")
            existing = response.get(header, "").split()
            response[header] = " ".join(dict.fromkeys([*existing, *tags]))
        if conf.get("drop_vary_cookie"):
            drop_unused_vary_cookie(request, response)
        return response

    def process_template_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """`DetailView` pages carry `app.model:pk`, `ListView` pages
        `app.model`, Wagtail pages `wagtail.page:<id>`."""
        context = getattr(response, "context_data", None) or {}
        page = context.get("page")
        if page is not None and hasattr(page, "url_path") and hasattr(page, "get_ancestors"):
            # A page Wagtail serves: `wagtail.page:<id>`, what its changes
            # and its children's notify (kiln_django.wagtail).
            tag(request, f"wagtail.page:{page.pk}")
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
