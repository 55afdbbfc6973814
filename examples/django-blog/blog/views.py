from django.contrib.syndication.views import Feed
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.contrib.auth.decorators import login_required
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

import kiln_django

from .models import Comment, Post


def post_list(request):
    posts = list(Post.objects.all())
    # The list shows every post's title and comment count.
    kiln_django.tag(request, Post, Comment)
    return render(request, "blog/post_list.html", {"posts": posts})


def post_detail(request, pk):
    post = get_object_or_404(Post, pk=pk)
    # blog.post:<pk>: its own changes; blog.comment@post:<pk> (a related
    # manager's queryset): its comments', and no other post's.
    kiln_django.tag(request, post, post.comments.all())
    return render(request, "blog/post_detail.html", {"post": post, "comments": post.comments.all()})


class LatestPosts(Feed):
    title = "Field Notes"
    link = "/"
    description = "New posts from the field."

    def items(self):
        return Post.objects.all()[:20]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        return item.body


def feed(request):
    kiln_django.tag(request, Post)
    return LatestPosts()(request)


class PostComments(Feed):
    """Each post's comments, as a feed: a non-HTML page at a URL without an
    extension (`/posts/1/feed/`), found through the post's link."""

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
