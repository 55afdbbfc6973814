"""What kiln_django's model wiring (KILN["models"]) does not know: a post's
page shows its comments, so a comment change regenerates the post too."""
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

import kiln_django

from .models import Comment


@receiver([post_save, post_delete], sender=Comment)
def comment_changed(sender, instance, using=None, **kwargs):
    kiln_django.notify([f"tag:blog.post:{instance.post_id}"], using=using)
