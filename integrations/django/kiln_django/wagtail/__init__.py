"""kiln for Wagtail: publishing, unpublishing, moving or deleting a page
regenerates the page, the listing pages above it and the pages of its tags;
a changed snippet regenerates the pages that tag it. Pages served by Wagtail
tag themselves (`wagtail.page:<id>`), so a listing page is regenerated when
a child changes without any code in the project.

    INSTALLED_APPS = [..., "kiln_django", "kiln_django.wagtail"]
    # (or "kiln_django.wagtail.KilnWagtailConfig": the same app)
    KILN = {"snippets": ["blog.Author"]}      # optional

A routable page that lists a tag (`/blog/tags/<slug>/`) names it with
`kiln_django.tag(request, kiln_django.wagtail.tag_tag(slug))`.
"""
from __future__ import annotations

from typing import Any

#: The tag every page served by Wagtail carries, and what its changes notify.
PAGE_TAG = "wagtail.page"


def page_tag(page: Any) -> str:
    """`wagtail.page:<id>`, whatever the page's class."""
    return f"{PAGE_TAG}:{page.pk}"


def tag_tag(slug: str) -> str:
    """What a page listing a taggit tag carries: `wagtail.tag:<slug>`."""
    return f"wagtail.tag:{slug}"


def page_path(page: Any) -> str | None:
    """The page's path on its site (`/blog/first-post/`), if it has one."""
    try:
        parts = page.get_url_parts()
    except Exception:  # noqa: BLE001  (a page outside any site has no URL)
        return None
    if not parts:
        return None
    path = parts[2]
    return path if isinstance(path, str) and path.startswith("/") else None


def targets_for_page(page: Any, *, url: str | None = None, parents: Any = None) -> list[str]:
    """The page (its URL, so a new page is baked, and its tag), every
    ancestor that lists it, and the pages of its tags."""
    targets: list[str] = [f"tag:{page_tag(page)}"]
    path = url if url is not None else page_path(page)
    if path:
        targets.append(path)
    ancestors = parents if parents is not None else page.get_ancestors()
    for ancestor in ancestors:
        if ancestor.depth > 1:  # the tree's root is no page of a site
            targets.append(f"tag:{page_tag(ancestor)}")
    specific = getattr(page, "specific", page)
    tags = getattr(specific, "tags", None)
    if tags is not None and hasattr(tags, "all"):
        targets.extend(f"tag:{tag_tag(t.slug)}" for t in tags.all())
    return list(dict.fromkeys(targets))


def _published(sender: Any, instance: Any, **kwargs: Any) -> None:
    from .. import notify

    notify(targets_for_page(instance))


def _moved(sender: Any, instance: Any, parent_page_before: Any, parent_page_after: Any, url_path_before: str, url_path_after: str, **kwargs: Any) -> None:
    from .. import notify

    targets = targets_for_page(instance)
    # The old address answers 404 (or a redirect) now: regenerate it too,
    # and the listings of the parent it left.
    old = _site_relative(instance, url_path_before)
    if old:
        targets.append(old)
    targets.extend(targets_for_page(parent_page_before, url=""))
    notify(dict.fromkeys(targets))


def _deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from .. import notify

    # Read while the row is there: after the delete the tree has no place for it.
    notify(targets_for_page(instance))


def _site_relative(page: Any, url_path: str) -> str | None:
    """A tree `url_path` (`/home/blog/old/`) as a path on the page's site."""
    try:
        site = page.get_site()
    except Exception:  # noqa: BLE001
        return None
    if site is None:
        return None
    root = site.root_page.url_path
    return "/" + url_path[len(root):] if url_path.startswith(root) else None


from .apps import KilnWagtailConfig as KilnWagtailConfig  # noqa: E402  (INSTALLED_APPS may name it here)
