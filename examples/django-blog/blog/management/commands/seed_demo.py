from django.core.management.base import BaseCommand

from django.contrib.auth.models import User

from blog.models import Comment, Post

POSTS = [
    ("Counting birds at dawn", "We walked the east meadow at 5:40.\n\nTwenty-two species before breakfast, including a late swift."),
    ("A week of rain", "The gauge says 61 mm. The river says more.\n\nThe heron did not seem to mind."),
    ("Mending the hide", "New roof felt, two hinges and a coat of linseed oil. It is dry inside again."),
]


class Command(BaseCommand):
    help = "Creates a few demo posts (idempotent)."

    def handle(self, *args, **options):
        if Post.objects.exists():
            self.stdout.write("posts already exist")
            return
        for title, body in POSTS:
            Post.objects.create(title=title, body=body)
        first = Post.objects.order_by("id").first()
        Comment.objects.create(post=first, author="Ines", text="Was the swift heading south?")
        if not User.objects.filter(username="editor").exists():
            User.objects.create_superuser("editor", "editor@example.test", "field-notes")
        self.stdout.write(f"created {Post.objects.count()} posts")
