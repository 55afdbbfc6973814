import datetime

from django.contrib.syndication.views import Feed
from django.utils.feedgenerator import Rss201rev2Feed
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.contrib.auth.decorators import login_required
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

import kiln_django

from .models import Comment, Post


#: Posts per page of the list; later pages are `/?page=2`, Django's
#: standard Paginator (nginx hands any query string to Django).
PAGE_SIZE = 5


def post_list(request):
    page = Paginator(Post.objects.all(), PAGE_SIZE).get_page(request.GET.get("page"))
    # The list shows every post's title and comment count.
    kiln_django.tag(request, Post, Comment)
    return render(request, "blog/post_list.html", {"posts": page.object_list, "page": page})


def archive(request):
    """Every post's title on one page: how kiln (and a search engine) finds
    the posts past the list's first page without following `?page=N`."""
    kiln_django.tag(request, Post)
    return render(request, "blog/archive.html", {"posts": Post.objects.only("id", "title")})


def search(request):
    """Titles containing `?q=`: answered by Django for every query (nginx
    sends requests with a query string to the app); the bare form is baked."""
    q = request.GET.get("q", "").strip()[:100]
    posts = Post.objects.filter(title__icontains=q) if q else Post.objects.none()
    kiln_django.tag(request, Post)
    return render(request, "blog/search.html", {"q": q, "posts": posts})


def post_detail(request, pk):
    post = get_object_or_404(Post, pk=pk)
    # blog.post:<pk>: its own changes; blog.comment@post:<pk> (a related
    # manager's queryset): its comments', and no other post's.
    kiln_django.tag(request, post, post.comments.all())
    return render(request, "blog/post_detail.html", {"post": post, "comments": post.comments.all()})


class DatedRss(Rss201rev2Feed):
    """RSS whose `lastBuildDate` is the newest item's date, or the feed's own
    (`built`) when it has none. Django's default for a feed without dated
    items is the current time: every request would answer differently, and
    no cache (kiln's or a CDN's) could ever hold the app's answer."""

    def latest_post_date(self):
        if any(item.get("pubdate") for item in self.items):
            return super().latest_post_date()
        return self.feed["built"]


#: The date of a feed with nothing in it yet.
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


class LatestPosts(Feed):
    feed_type = DatedRss
    title = "Field Notes"
    link = "/"
    description = "New posts from the field."

    def items(self):
        return Post.objects.all()[:20]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        return item.body

    def item_pubdate(self, item):
        return item.created

    def feed_extra_kwargs(self, obj):
        return {"built": EPOCH}


def feed(request):
    kiln_django.tag(request, Post)
    return LatestPosts()(request)


class PostComments(Feed):
    """Each post's comments, as a feed: a non-HTML page at a URL without an
    extension (`/posts/1/feed/`), found through the post's link."""

    feed_type = DatedRss

    def get_object(self, request, pk):
        post = get_object_or_404(Post, pk=pk)
        kiln_django.tag(request, post, post.comments.all())
        return post

    def title(self, post):
        return f"Comments on {post.title}"

    def link(self, post):
        return post.get_absolute_url()

    def items(self, post):
        return post.comments.all()

    def item_title(self, item):
        return item.author

    def item_description(self, item):
        return item.text

    def item_link(self, item):
        return item.post.get_absolute_url()

    def item_pubdate(self, item):
        return item.created

    def feed_extra_kwargs(self, post):
        return {"built": post.created}


def post_feed(request, pk):
    return PostComments()(request, pk=pk)


@login_required
def members(request):
    """Members only: anonymous visitors are sent to the login form."""
    return render(request, "blog/members.html", {"posts": Post.objects.all()[:5]})


@require_POST
def add_comment(request, pk):
    post = get_object_or_404(Post, pk=pk)
    author = request.POST.get("author", "").strip()[:80] or "Anonymous"
    text = request.POST.get("text", "").strip()
    if text:
        Comment.objects.create(post=post, author=author, text=text[:2000])
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"ok": bool(text)})
    return redirect(post)


@never_cache
def csrf(request):
    """Hands the CSRF token to the comment form's script. Never baked: it sets
    a cookie and is no-store, so baked pages stay identical for everyone."""
    return JsonResponse({"token": get_token(request)})
