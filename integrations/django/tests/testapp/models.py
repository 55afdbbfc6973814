from django.db import models

from kiln_django import KilnManager


class Topic(models.Model):
    name = models.CharField(max_length=50)


class Post(models.Model):
    title = models.CharField(max_length=200)
    objects = KilnManager()
    topics = models.ManyToManyField(Topic, blank=True)

    def get_absolute_url(self) -> str:
        return f"/posts/{self.pk}/"


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE)
    text = models.TextField()
    objects = KilnManager()
