from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from taggit.models import TaggedItemBase
from wagtail.models import Page

import kiln_django
from kiln_django.wagtail import tag_tag


class Author(models.Model):
    name = models.CharField(max_length=80)


class BlogIndexPage(Page):
    """Lists its posts; `/tags/<slug>/` lists the posts of one tag."""

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["posts"] = BlogPage.objects.child_of(self).live()
        return context


class BlogPageTag(TaggedItemBase):
    content_object = ParentalKey("BlogPage", related_name="tagged_items", on_delete=models.CASCADE)


class BlogPage(Page):
    body = models.TextField(blank=True)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)
    tags = ClusterTaggableManager(through=BlogPageTag, blank=True)

    def get_context(self, request, *args, **kwargs):
        if self.author_id:
            kiln_django.tag(request, self.author)
        for t in self.tags.all():
            kiln_django.tag(request, tag_tag(t.slug))
        return super().get_context(request, *args, **kwargs)
