"""The Wagtail request referee's site and edits (tests/it/referee_wagtail.rs).

    python3 -m tests_wagtail.referee seed      # pages, menu, posts, tags, authors
    python3 -m tests_wagtail.referee edit 7    # seeded random edits, one line said

Edits go through Wagtail's own API (revisions published, pages moved and
deleted, snippets saved), so every signal fires as in the admin; kiln
hears of them from kiln_django at each commit.
"""
from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests_wagtail.site_settings")

import django

django.setup()

from django.db import transaction  # noqa: E402
from wagtail.models import Page, Site  # noqa: E402

import kiln_django  # noqa: E402
from tests_wagtail.blog.models import Author, BlogIndexPage, BlogPage  # noqa: E402

WORDS = "clay glaze kiln wheel slip bisque raku stoneware porcelain celadon shino ash".split()


def home() -> Page:
    return Site.objects.get(is_default_site=True).root_page.specific


def seed() -> None:
    rng = random.Random(42)
    site = Site.objects.get(is_default_site=True)
    site.hostname = "127.0.0.1"
    site.port = int(os.environ.get("KILN_WAGTAIL_PORT", "80"))
    site.save()
    root = site.root_page
    authors = [Author.objects.create(name=n) for n in ("Ada", "Ben", "Cai")]
    indexes = []
    for title, slug in (("Blog", "blog"), ("Notes", "notes")):
        index = root.add_child(instance=BlogIndexPage(title=title, slug=slug, show_in_menus=True))
        index.save_revision().publish()
        indexes.append(index)
    about = root.add_child(instance=BlogIndexPage(title="About", slug="about", show_in_menus=True))
    about.save_revision().publish()
    for i in range(30):
        index = indexes[i % 2]
        post = index.add_child(
            instance=BlogPage(
                title=f"{WORDS[i % len(WORDS)].title()} notes {i}",
                slug=f"post-{i}",
                body=f"Post {i}.",
                author=authors[i % 3],
            )
        )
        post.tags.add(*rng.sample(WORDS, 2))
        post.save_revision().publish()
    kiln_django.flush()
    print("seeded")


def edit(seed_n: int) -> None:
    rng = random.Random(seed_n)
    did: list[str] = []
    kinds = ["retitle", "publish", "unpublish", "menu", "author", "untag", "tag", "move", "delete", "body"]
    fixed = {
        1: ["retitle", "menu", "author"],
        2: ["untag", "publish", "move"],
        3: ["unpublish", "delete", "tag", "body"],
    }
    plan = fixed.get(seed_n) or [rng.choice(kinds) for _ in range(rng.randint(2, 4))]
    for i, kind in enumerate(plan):
        posts = list(BlogPage.objects.live().order_by("pk"))
        post = rng.choice(posts) if posts else None
        with transaction.atomic():
            if kind == "retitle" and post:
                post.title = f"Retitled {seed_n}-{i}"
                post.save_revision().publish()
                did.append(f"retitle {post.pk}")
            elif kind == "body" and post:
                post.body = f"Rewritten {seed_n}-{i}."
                post.save_revision().publish()
                did.append(f"body {post.pk}")
            elif kind == "publish":
                index = rng.choice(list(BlogIndexPage.objects.filter(slug__in=["blog", "notes"])))
                new = index.add_child(instance=BlogPage(title=f"New {seed_n}-{i}", slug=f"new-{seed_n}-{i}", body="Fresh."))
                new.tags.add(rng.choice(WORDS))
                new.save_revision().publish()
                did.append(f"publish {new.pk}")
            elif kind == "unpublish" and post:
                post.unpublish()
                did.append(f"unpublish {post.pk}")
            elif kind == "menu":
                about = BlogIndexPage.objects.get(slug="about")
                about.title = f"About {seed_n}-{i}"
                about.save_revision().publish()
                did.append("rename menu page")
            elif kind == "author":
                author = rng.choice(list(Author.objects.all()))
                author.name = f"Author {seed_n}-{i}"
                author.save()
                did.append(f"rename author {author.pk}")
            elif kind == "untag" and post:
                post.tags.clear()
                post.save_revision().publish()
                did.append(f"untag {post.pk}")
            elif kind == "tag" and post:
                post.tags.add(f"fresh{seed_n}")
                post.save_revision().publish()
                did.append(f"tag {post.pk}")
            elif kind == "move" and post:
                other = BlogIndexPage.objects.filter(slug__in=["blog", "notes"]).exclude(pk=post.get_parent().pk).first()
                post.move(other, pos="last-child")
                did.append(f"move {post.pk}")
            elif kind == "delete" and post:
                did.append(f"delete {post.pk}")
                post.delete()
    kiln_django.flush()
    print(", ".join(did))


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        seed()
    else:
        edit(int(sys.argv[2]))
