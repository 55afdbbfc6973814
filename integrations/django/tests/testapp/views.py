from django.http import HttpResponse
from django.shortcuts import render
from django.views.generic import DetailView, ListView

import kiln_django

from .models import Comment, Post


class PostDetail(DetailView):
    model = Post
    template_name = "testapp/post_detail.html"


class PostList(ListView):
    model = Post
    template_name = "testapp/post_list.html"


def about(request):
    kiln_django.tag(request, "about", Post.objects.first())
    return HttpResponse("about")


def with_login_link(request):
    # The auth context processor looks at request.user: Django adds Vary: Cookie.
    return render(request, "testapp/login_link.html")


def with_form(request):
    return render(request, "testapp/form.html")


def reads(request):
    # Reads rows without tagging anything: capture names them.
    return HttpResponse(", ".join(f"{c.post.title}: {c.text}" for c in Comment.objects.select_related("post")))
