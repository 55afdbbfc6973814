from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from taggit.models import TaggedItemBase
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.models import Page

import kiln_django
from kiln_django.wagtail import tag_tag


class Author(models.Model):
    name = models.CharField(max_length=80)


class BlogIndexPage(RoutablePageMixin, Page):
    """Lists its posts; `tags/<slug>/` (a routable page, as in bakerydemo)
    lists the posts of one tag."""

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["posts"] = BlogPage.objects.child_of(self).live()
        return context

    @path("tags/<slug:slug>/")
    def tag_listing(self, request, slug):
        kiln_django.tag(request, tag_tag(slug))
        posts = BlogPage.objects.child_of(self).live().filter(tags__slug=slug)
        return self.render(request, context_overrides={"posts": posts})


class BlogPageTag(TaggedItemBase):
    content_object = ParentalKey("BlogPage", related_name="tagged_items", on_delete=models.CASCADE)


class BlogPage(Page):
    body = models.TextField(blank=True)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)
    image = models.ForeignKey("wagtailimages.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tags = ClusterTaggableManager(through=BlogPageTag, blank=True)

    def get_context(self, request, *args, **kwargs):
        if self.author_id:
            kiln_django.tag(request, self.author)
        if self.image_id:
            kiln_django.tag(request, self.image)
        for t in self.tags.all():
            kiln_django.tag(request, tag_tag(t.slug))
        return super().get_context(request, *args, **kwargs)
