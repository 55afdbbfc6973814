from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.middleware.csrf import get_token
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .kiln import add_surrogate_keys, surrogate_keys
from .models import Comment, Post


def post_list(request):
    posts = list(Post.objects.all())
    response = render(request, "blog/post_list.html", {"posts": posts})
    # The list shows every post's title and comment count.
    add_surrogate_keys(response, ["posts"] + [f"comments:{p.pk}" for p in posts])
    return response


@surrogate_keys(lambda request, response, pk: [f"post:{pk}", f"comments:{pk}"])
def post_detail(request, pk):
    post = get_object_or_404(Post, pk=pk)
    return render(request, "blog/post_detail.html", {"post": post, "comments": post.comments.all()})


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
