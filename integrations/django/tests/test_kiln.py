"""kiln_django against real Django and a real HTTP receiver on loopback."""
from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client, TestCase, TransactionTestCase, override_settings

import kiln_django
from kiln_django import checks, views
from kiln_django.transport import sender
from tests.receiver import Receiver
from tests.testapp.models import Comment, Post, Topic


def kiln(**overrides: object) -> dict:
    from django.conf import settings

    return {**settings.KILN, **overrides}


class TaggingTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        with override_settings(KILN=kiln(enabled=False)):
            cls.post = Post.objects.create(title="Hello")

    def test_detail_views_tag_their_object_and_the_template_tag_adds_more(self) -> None:
        r = self.client.get(f"/posts/{self.post.pk}/")
        self.assertIn(f"testapp.post:{self.post.pk}", r["Surrogate-Key"].split())
        self.assertIn("sidebar", r["Surrogate-Key"].split())

    def test_list_views_tag_their_model(self) -> None:
        r = self.client.get("/posts/")
        self.assertEqual(r["Surrogate-Key"].split()[0], "testapp.post")

    def test_tag_in_a_function_view(self) -> None:
        r = self.client.get("/about/")
        self.assertEqual(r["Surrogate-Key"].split(), ["about", f"testapp.post:{self.post.pk}"])

    def test_error_pages_carry_no_tags(self) -> None:
        r = self.client.get("/posts/999/")
        self.assertEqual(r.status_code, 404)
        self.assertNotIn("Surrogate-Key", r)


class CaptureTests(TestCase):
    """Rows a view reads become its tags, with no tagging code."""

    @classmethod
    def setUpTestData(cls) -> None:
        with override_settings(KILN=kiln(enabled=False)):
            cls.post = Post.objects.create(title="Hello")
            cls.comments = [Comment.objects.create(post=cls.post, text=f"c{i}") for i in range(3)]

    def test_the_rows_a_view_reads_are_its_tags(self) -> None:
        r = self.client.get("/reads/")
        keys = r["Surrogate-Key"].split()
        self.assertIn(f"testapp.post:{self.post.pk}", keys)
        for c in self.comments:
            self.assertIn(f"testapp.comment:{c.pk}", keys)

    def test_excluded_models_and_writes_are_not_recorded(self) -> None:
        with override_settings(KILN=kiln(capture_exclude=[])):
            from kiln_django import capture

            capture._watched.discard("testapp.comment")
            capture._kinds.clear()
            try:
                keys = self.client.get("/reads/")["Surrogate-Key"].split()
            finally:
                capture.watch({"testapp.comment"})
        self.assertNotIn(f"testapp.comment:{self.comments[0].pk}", keys)
        self.assertIn(f"testapp.post:{self.post.pk}", keys)
        # A POST is no page kiln bakes: nothing is recorded.
        r = self.client.post("/reads/")
        self.assertNotIn("Surrogate-Key", r)

    def test_past_the_cap_a_models_rows_become_its_model_tag(self) -> None:
        with override_settings(KILN=kiln(capture_max_keys=2)):
            keys = self.client.get("/reads/")["Surrogate-Key"].split()
        self.assertIn("testapp.comment", keys)
        self.assertFalse([k for k in keys if k.startswith("testapp.comment:")], keys)
        self.assertLessEqual(len(keys), 3, keys)

    def test_capture_can_be_switched_off(self) -> None:
        with override_settings(KILN=kiln(capture=False)):
            self.assertNotIn("Surrogate-Key", self.client.get("/reads/"))


class VaryCookieTests(TestCase):
    def test_anonymous_pages_that_only_looked_at_the_session_drop_vary_cookie(self) -> None:
        r = self.client.get("/hello/")
        self.assertIn("Cookie", r.get("Vary", ""), "Django adds it: the auth context processor looked")
        with override_settings(KILN=kiln(drop_vary_cookie=True)):
            r = self.client.get("/hello/")
            self.assertNotIn("Cookie", r.get("Vary", ""))
            self.assertIn("log in", r.content.decode())
            # A logged-in visitor keeps it (and is never served a baked page).
            User.objects.create_user("ada", password="pw")
            self.client.login(username="ada", password="pw")
            r = self.client.get("/hello/")
            self.assertIn("Cookie", r["Vary"])
            self.assertIn("Hello ada", r.content.decode())


class CheckAndCsrfTests(TestCase):
    def test_the_csrf_check_samples_real_detail_pages(self) -> None:
        with override_settings(KILN=kiln(enabled=False)):
            post = Post.objects.create(title="sampled")
        with override_settings(KILN=kiln(check_urls=["/about/"])):
            self.assertEqual(checks.sample_urls(), ["/about/", f"/posts/{post.pk}/"])

    def test_the_checks_run_before_the_tables_exist(self) -> None:
        from django.db import connection

        # Inside the test's transaction: rolled back with it.
        with connection.cursor() as c:
            c.execute("DROP TABLE testapp_post")
        with override_settings(KILN=kiln(models=["testapp.Post"])):
            self.assertEqual(checks.sample_urls(), [], "migrate runs the checks before it creates tables")

    def test_the_middleware_runs_in_the_event_loop_under_asgi(self) -> None:
        import asyncio

        from asgiref.sync import iscoroutinefunction
        from django.http import HttpResponse

        from kiln_django.middleware import KilnMiddleware

        async def view(request: object) -> HttpResponse:
            kiln_django.tag(request, "async-page")  # type: ignore[arg-type]
            return HttpResponse("ok")

        middleware = KilnMiddleware(view)
        self.assertTrue(iscoroutinefunction(middleware), "no sync_to_async hop")
        from django.test import RequestFactory

        response = asyncio.run(middleware(RequestFactory().get("/")))
        self.assertEqual(response["Surrogate-Key"], "async-page")

    def test_a_session_cookie_the_nginx_block_does_not_know_is_a_warning(self) -> None:
        self.assertEqual(checks.session_cookie_bypasses_baked_pages(), [])
        with override_settings(SESSION_COOKIE_NAME="shop_session"):
            found = checks.session_cookie_bypasses_baked_pages()
        self.assertEqual([w.id for w in found], ["kiln.W005"])
        self.assertIn('bypass-cookies = ["shop_session"', found[0].hint)

    def test_an_unknown_setting_is_an_error_naming_the_one_meant(self) -> None:
        with override_settings(KILN=kiln(batchwindow=0.1)):
            found = checks.settings_are_known()
        self.assertEqual([e.id for e in found], ["kiln.E001"])
        self.assertIn("batch_window", found[0].hint)

    def test_system_check_warns_about_csrf_tokens_on_baked_urls(self) -> None:
        with override_settings(KILN=kiln(check_urls=["/form/", "/about/"])):
            found = checks.csrf_tokens_in_baked_pages(databases=["default"])
        self.assertEqual([w.id for w in found], ["kiln.W001"])
        self.assertIn("/form/", found[0].msg)
        with override_settings(KILN=kiln(check_urls=["/about/"])):
            self.assertEqual(checks.csrf_tokens_in_baked_pages(databases=["default"]), [])

    def test_csrf_failures_are_logged_with_the_page_and_counted(self) -> None:
        views.FAILURES.clear()
        client = Client(enforce_csrf_checks=True)
        with self.assertLogs("kiln_django.csrf", logging.WARNING) as logs:
            r = client.post("/form/", {}, HTTP_REFERER="https://example.test/posts/1/")
            client.post("/form/", {}, HTTP_REFERER="https://example.test/posts/1/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(views.FAILURES["https://example.test/posts/1/"], 2)
        self.assertIn("from page https://example.test/posts/1/", logs.output[0])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisStreamTests(TransactionTestCase):
    """Changes go to the Redis stream every web host reads, when configured."""

    def setUp(self) -> None:
        import shutil
        import subprocess
        import time

        if shutil.which("redis-server") is None:
            import os

            if os.environ.get("CI") == "true":
                raise AssertionError("redis-server is required under CI=true")
            self.skipTest("*** redis-server not found on PATH ***")
        import redis  # noqa: F401  (the optional dependency)

        self.port = free_port()
        self.server = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)

    def tearDown(self) -> None:
        self.server.terminate()
        self.server.wait()

    def test_a_commit_becomes_one_stream_entry(self) -> None:
        import redis

        url = f"redis://127.0.0.1:{self.port}/0"
        with override_settings(KILN=kiln(redis=url, url="", spool="")):
            with transaction.atomic():
                a = Post.objects.create(title="a")
                b = Post.objects.create(title="b")
            kiln_django.flush()
        entries = redis.Redis.from_url(url).xrange("kiln:events")
        self.assertEqual(len(entries), 1, "one batch, one entry")
        lines = entries[0][1][b"targets"].decode().splitlines()
        self.assertEqual(lines, [f"tag:testapp.post:{a.pk}", "tag:testapp.post", f"tag:testapp.post:{b.pk}"])


class NotifyTests(TransactionTestCase):
    """Real commits and rollbacks (on_commit needs them)."""

    def setUp(self) -> None:
        self.daemon = Receiver()
        self.spool = Path(tempfile.mkdtemp())
        self.settings_override = override_settings(KILN=kiln(url=self.daemon.url, token="t0ken", spool=str(self.spool)))
        self.settings_override.enable()
        sender.flush()
        sender.requests = 0

    def tearDown(self) -> None:
        sender.flush()
        self.settings_override.disable()
        self.daemon.close()

    def test_a_save_notifies_its_object_and_model_after_commit_with_the_token(self) -> None:
        with transaction.atomic():
            post = Post.objects.create(title="a")
            kiln_django.flush()
            self.assertEqual(self.daemon.requests, [], "nothing before the commit")
        kiln_django.flush()
        self.assertEqual(self.daemon.targets(), [f"tag:testapp.post:{post.pk}", "tag:testapp.post"])
        self.assertEqual(self.daemon.auth, ["Bearer t0ken"])

    def test_a_rolled_back_save_sends_nothing(self) -> None:
        try:
            with transaction.atomic():
                Post.objects.create(title="never")
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        kiln_django.flush()
        self.assertEqual(self.daemon.requests, [])

    def test_deletes_and_m2m_changes_notify(self) -> None:
        post = Post.objects.create(title="a")
        topic = Topic.objects.create(name="t")
        kiln_django.flush()
        self.daemon.requests.clear()
        post.topics.add(topic)
        Comment.objects.create(post=post, text="hi")
        pk = post.pk
        post.delete()
        kiln_django.flush()
        targets = self.daemon.targets()
        self.assertIn(f"tag:testapp.topic:{topic.pk}", targets)
        self.assertIn("tag:testapp.comment", targets)
        self.assertIn(f"tag:testapp.post:{pk}", targets)

    def test_a_bulk_import_is_one_request(self) -> None:
        with transaction.atomic():
            for i in range(1000):
                Post.objects.create(title=f"p{i}")
        kiln_django.flush()
        self.assertEqual(len(self.daemon.requests), 1)
        self.assertEqual(len(self.daemon.targets()), 1001)

    def test_autocommit_saves_are_batched_within_the_window(self) -> None:
        with override_settings(KILN=kiln(url=self.daemon.url, batch_window=60)):
            for i in range(200):
                Post.objects.create(title=f"p{i}")
            self.assertEqual(self.daemon.requests, [], "held for the window")
            kiln_django.flush()
        self.assertEqual(len(self.daemon.requests), 1)

    def test_a_daemon_that_is_down_falls_back_to_a_durable_spool_file(self) -> None:
        self.daemon.close()
        post = Post.objects.create(title="while down")
        kiln_django.flush()
        files = list((self.spool / "new").iterdir())
        self.assertEqual(len(files), 1)
        self.assertEqual(files[0].read_text().splitlines(), [f"tag:testapp.post:{post.pk}", "tag:testapp.post"])
        self.assertEqual(list((self.spool / "tmp").iterdir()), [])
        self.daemon = Receiver()  # for tearDown

    def test_bulk_writes_django_sends_no_signal_for_notify_through_the_manager(self) -> None:
        posts = Post.objects.bulk_create([Post(title=f"b{i}") for i in range(3)])
        kiln_django.flush()
        for p in posts:
            self.assertIn(f"tag:testapp.post:{p.pk}", self.daemon.targets())
        self.daemon.requests.clear()
        updated = Post.objects.filter(title__startswith="b").update(title="renamed")
        kiln_django.flush()
        self.assertEqual(updated, 3)
        self.assertEqual(len(self.daemon.requests), 1, "one update, one request")
        self.assertEqual(
            sorted(t for t in self.daemon.targets() if ":" in t.removeprefix("tag:")),
            sorted(f"tag:testapp.post:{p.pk}" for p in posts),
            "the rows the update matched before it ran",
        )
        self.daemon.requests.clear()
        for p in posts:
            p.title = "again"
        Post.objects.bulk_update(posts, ["title"])
        kiln_django.flush()
        self.assertEqual({f"tag:testapp.post:{p.pk}" for p in posts} - set(self.daemon.targets()), set())

    def test_raw_sql_is_announced_with_changed(self) -> None:
        from django.db import connection

        post = Post.objects.create(title="raw")
        kiln_django.flush()
        self.daemon.requests.clear()
        with transaction.atomic():
            with connection.cursor() as c:
                c.execute("UPDATE testapp_post SET title = %s WHERE id = %s", ["sql", post.pk])
            kiln_django.changed(Post.objects.filter(pk=post.pk))
            kiln_django.flush()
            self.assertEqual(self.daemon.requests, [], "after the commit")
        kiln_django.flush()
        self.assertEqual(self.daemon.targets(), [f"tag:testapp.post:{post.pk}", "tag:testapp.post"])

    def test_a_comment_refreshes_only_its_posts_comment_lists(self) -> None:
        a = Post.objects.create(title="a")
        b = Post.objects.create(title="b")
        self.assertEqual(kiln_django.tags_for(a.comment_set.all()), [f"testapp.comment@post:{a.pk}"])
        self.assertEqual(kiln_django.tags_for(a.comment_set.filter(text="x")), [f"testapp.comment@post:{a.pk}"])
        self.assertEqual(kiln_django.tags_for(Comment.objects.all()), ["testapp.comment"])
        kiln_django.flush()
        self.daemon.requests.clear()
        c = Comment.objects.create(post=a, text="first")
        kiln_django.flush()
        self.assertIn(f"tag:testapp.comment@post:{a.pk}", self.daemon.targets())
        self.assertNotIn(f"tag:testapp.comment@post:{b.pk}", self.daemon.targets())
        # Moved with update(): both posts' pages.
        self.daemon.requests.clear()
        Comment.objects.filter(pk=c.pk).update(post=b)
        kiln_django.flush()
        self.assertIn(f"tag:testapp.comment@post:{a.pk}", self.daemon.targets())
        self.assertIn(f"tag:testapp.comment@post:{b.pk}", self.daemon.targets())

    def test_saves_in_one_transaction_are_one_request_sent_at_commit(self) -> None:
        with transaction.atomic():
            Post.objects.create(title="x")
            Post.objects.create(title="y")
        # No flush: the default sends right after the commit.
        self.assertEqual(len(self.daemon.requests), 1)

    def test_the_api_path_in_the_url_is_corrected_and_said(self) -> None:
        with override_settings(KILN=kiln(url=self.daemon.url + "/v1/regen/", spool="")):
            Post.objects.create(title="z")
            kiln_django.flush()
            found = checks.settings_are_known()
        self.assertEqual(len(self.daemon.requests), 1, "delivered to the daemon, not the spool")
        self.assertEqual([w.id for w in found], ["kiln.W004"])

    def test_management_commands(self) -> None:
        out = io.StringIO()
        call_command("kiln_regen", "tag:testapp.post:1", "/about/", stdout=out)
        self.assertIn("sent 2 target(s) to kiln (daemon)", out.getvalue())
        self.assertEqual(self.daemon.targets(), ["tag:testapp.post:1", "/about/"])
        with self.assertRaises(CommandError):
            call_command("kiln_regen", "not-a-target")
        out = io.StringIO()
        call_command("kiln_status", stdout=out)
        self.assertIn("1 retrying", out.getvalue())
        self.assertIn("failed /x/: answered 503", out.getvalue())
