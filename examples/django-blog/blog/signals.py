"""Model changes → kiln targets. Each tag matches a Surrogate-Key set by a view."""
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .kiln import notify
from .models import Comment, Post


@receiver([post_save, post_delete], sender=Post)
def post_changed(sender, instance, **kwargs):
    # The post's own page, and every list that shows it.
    notify([f"tag:post:{instance.pk}", "tag:posts"])


@receiver([post_save, post_delete], sender=Comment)
def comment_changed(sender, instance, **kwargs):
    notify([f"tag:comments:{instance.post_id}"])
