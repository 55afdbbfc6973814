from django.db import models
from django.urls import reverse

from kiln_django import KilnManager


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    # update(), bulk_create() and bulk_update() notify kiln too.
    objects = KilnManager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("post_detail", args=[self.pk])


class Comment(models.Model):
    post = models.ForeignKey(Post, related_name="comments", on_delete=models.CASCADE)
    author = models.CharField(max_length=80)
    text = models.TextField(max_length=2000)
    created = models.DateTimeField(auto_now_add=True)
    objects = KilnManager()

    class Meta:
        ordering = ["created", "id"]
