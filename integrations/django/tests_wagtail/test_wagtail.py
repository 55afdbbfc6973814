"""kiln_django.wagtail against real Wagtail: a site with a blog index, tagged
posts and an author snippet, built by the test."""
from __future__ import annotations

from django.test import TransactionTestCase, override_settings
from wagtail.models import Page

import kiln_django
from kiln_django.transport import sender
from tests.receiver import Receiver
from tests_wagtail.blog.models import Author, BlogIndexPage, BlogPage


def kiln(**overrides: object) -> dict:
    from django.conf import settings

    return {**settings.KILN, **overrides}


class WagtailTests(TransactionTestCase):
    # The root page and the site Wagtail's migrations create, back for each test.
    serialized_rollback = True

    def setUp(self) -> None:
        self.daemon = Receiver()
        self.override = override_settings(KILN=kiln(url=self.daemon.url))
        self.override.enable()
        sender.flush()
        # The site Wagtail's migrations made: root → "Welcome" home at `/`.
        self.home = Page.objects.get(depth=2)
        self.blog = self.home.add_child(instance=BlogIndexPage(title="Blog", slug="blog"))
        self.author = Author.objects.create(name="Ada")
        self.post = self.blog.add_child(instance=BlogPage(title="First", slug="first", body="hello", author=self.author))
        self.post.tags.add("pottery")
        self.post.save_revision().publish()
        kiln_django.flush()
        self.daemon.requests.clear()

    def tearDown(self) -> None:
        sender.flush()
        self.override.disable()
        self.daemon.close()

    def test_served_pages_tag_themselves_their_snippets_and_tags(self) -> None:
        r = self.client.get("/blog/first/")
        self.assertEqual(r.status_code, 200)
        tags = r["Surrogate-Key"].split()
        self.assertIn(f"wagtail.page:{self.post.pk}", tags)
        self.assertIn(f"blog.author:{self.author.pk}", tags)
        self.assertIn("wagtail.tag:pottery", tags)
        r = self.client.get("/blog/")
        self.assertIn(f"wagtail.page:{self.blog.pk}", r["Surrogate-Key"].split())
        # The routable tag page the post links to (wagtail-bakery misses these).
        self.assertIn('href="/blog/tags/pottery/"', self.client.get("/blog/first/").content.decode())
        r = self.client.get("/blog/tags/pottery/")
        self.assertEqual(r.status_code, 200)
        self.assertIn("First", r.content.decode())
        self.assertIn("wagtail.tag:pottery", r["Surrogate-Key"].split())

    def test_publishing_regenerates_the_page_its_listings_and_its_tags(self) -> None:
        self.post.body = "edited"
        self.post.save_revision().publish()
        kiln_django.flush()
        targets = self.daemon.targets()
        for want in [
            f"tag:wagtail.page:{self.post.pk}",
            "/blog/first/",
            f"tag:wagtail.page:{self.blog.pk}",
            f"tag:wagtail.page:{self.home.pk}",
            "tag:wagtail.tag:pottery",
        ]:
            self.assertIn(want, targets)
        self.assertNotIn("tag:wagtail.page:1", targets, "the tree's root is no page")

    def test_a_page_names_the_pages_its_menu_shows_with_no_template_tags(self) -> None:
        # Wagtail's menu (the home page's children "in menu") is read by the
        # template alone: capture names what it read.
        about = self.home.add_child(instance=BlogIndexPage(title="About", slug="about", show_in_menus=True))
        about.save_revision().publish()
        kiln_django.flush()
        r = self.client.get("/blog/first/")
        self.assertIn('<a href="/about/">About</a>', r.content.decode())
        self.assertIn(f"wagtail.page:{about.pk}", r["Surrogate-Key"].split())
        # Renaming it regenerates every page that tag names: this one too.
        self.daemon.requests.clear()
        about.title = "About us"
        about.save_revision().publish()
        kiln_django.flush()
        self.assertIn(f"tag:wagtail.page:{about.pk}", self.daemon.targets())

    def test_the_app_label_alone_installs_the_signals(self) -> None:
        # "kiln_django.wagtail" in INSTALLED_APPS (the docs' spelling) is the
        # app with its signals, not Django's default AppConfig.
        from django.apps import apps

        from kiln_django.wagtail.apps import KilnWagtailConfig

        self.assertIsInstance(apps.get_app_config("kiln_wagtail"), KilnWagtailConfig)
        from django.apps.config import AppConfig

        self.assertIs(type(AppConfig.create("kiln_django.wagtail")), KilnWagtailConfig)

    def test_a_new_page_is_named_by_its_url_so_it_is_baked(self) -> None:
        new = self.blog.add_child(instance=BlogPage(title="Second", slug="second"))
        new.save_revision().publish()
        kiln_django.flush()
        self.assertIn("/blog/second/", self.daemon.targets())
        self.assertIn(f"tag:wagtail.page:{self.blog.pk}", self.daemon.targets())

    def test_unpublishing_moving_and_deleting_regenerate_what_showed_it(self) -> None:
        self.post.unpublish()
        kiln_django.flush()
        self.assertIn("/blog/first/", self.daemon.targets())
        self.assertIn(f"tag:wagtail.page:{self.blog.pk}", self.daemon.targets())

        self.post.save_revision().publish()
        other = self.home.add_child(instance=BlogIndexPage(title="News", slug="news"))
        kiln_django.flush()
        self.daemon.requests.clear()
        Page.objects.get(pk=self.post.pk).move(other, pos="last-child")
        kiln_django.flush()
        targets = self.daemon.targets()
        self.assertIn("/news/first/", targets, "the new address")
        self.assertIn("/blog/first/", targets, "the old address (now gone)")
        self.assertIn(f"tag:wagtail.page:{self.blog.pk}", targets, "the listing it left")
        self.assertIn(f"tag:wagtail.page:{other.pk}", targets, "the listing it joined")

        self.daemon.requests.clear()
        Page.objects.get(pk=self.post.pk).delete()
        kiln_django.flush()
        self.assertIn("/news/first/", self.daemon.targets())
        self.assertIn(f"tag:wagtail.page:{other.pk}", self.daemon.targets())

    def test_an_image_change_regenerates_the_pages_that_show_it(self) -> None:
        import io

        from django.core.files.images import ImageFile
        from PIL import Image as Pil
        from wagtail.images.models import Image

        png = io.BytesIO()
        Pil.new("RGB", (4, 4), "red").save(png, "PNG")
        image = Image.objects.create(title="Kiln", file=ImageFile(png, name="kiln.png"))
        self.post.image = image
        self.post.save_revision().publish()
        r = self.client.get("/blog/first/")
        self.assertIn(f"wagtailimages.image:{image.pk}", r["Surrogate-Key"].split())
        kiln_django.flush()
        self.daemon.requests.clear()
        image.title = "Kiln, firing"
        image.save()
        kiln_django.flush()
        self.assertIn(f"tag:wagtailimages.image:{image.pk}", self.daemon.targets())

    def test_a_snippet_change_regenerates_the_pages_that_show_it(self) -> None:
        self.author.name = "Ada L."
        self.author.save()
        kiln_django.flush()
        self.assertIn(f"tag:blog.author:{self.author.pk}", self.daemon.targets())
