"""Seeded random edits for kiln's request referee (tests/it/referee_apps.rs).

Each edit goes through the ORM as an editor's would (save, delete, a new
comment), so kiln-django tells the daemon exactly as in production. The
same seed makes the same edits.
"""
import random

from django.core.management.base import BaseCommand
from django.db import transaction

from blog.models import Comment, Post

WORDS = "heron swift meadow river gauge hide linseed dawn rain clay kestrel moth fern".split()


class Command(BaseCommand):
    help = "Makes seeded random edits (kiln's request referee)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--edits", type=int, default=6)

    def handle(self, *args, seed, edits, **options):
        rng = random.Random(seed)

        def words(n):
            return " ".join(rng.choice(WORDS) for _ in range(n))

        done = []
        for _ in range(edits):
            posts = list(Post.objects.order_by("id"))
            comments = list(Comment.objects.order_by("id"))
            choices = ["create", "create", "comment"]
            if posts:
                choices += ["retitle", "rebody", "delete_post"]
            if len(posts) > 4:
                choices += ["delete_several"]
            if comments:
                choices += ["delete_comment"]
            action = rng.choice(choices)
            if action == "create":
                post = Post.objects.create(title=words(3).capitalize(), body=words(12))
                done.append(f"create {post.pk}")
            elif action == "comment" and posts:
                post = rng.choice(posts)
                Comment.objects.create(post=post, author=words(1), text=words(8))
                done.append(f"comment on {post.pk}")
            elif action == "retitle":
                post = rng.choice(posts)
                post.title = words(3).capitalize()
                post.save()
                done.append(f"retitle {post.pk}")
            elif action == "rebody":
                post = rng.choice(posts)
                post.body = words(15)
                post.save()
                done.append(f"rebody {post.pk}")
            elif action == "delete_post":
                post = rng.choice(posts)
                done.append(f"delete post {post.pk}")
                post.delete()
            elif action == "delete_several":
                # Several posts in one transaction: one notification.
                doomed = rng.sample(posts, 3)
                with transaction.atomic():
                    Post.objects.filter(pk__in=[p.pk for p in doomed]).delete()
                done.append("delete posts " + ",".join(str(p.pk) for p in doomed))
            elif action == "delete_comment":
                comment = rng.choice(comments)
                done.append(f"delete comment {comment.pk} of {comment.post_id}")
                comment.delete()
        self.stdout.write("; ".join(done))
