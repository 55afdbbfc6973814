from django.urls import path

from . import views

urlpatterns = [
    path("", views.post_list, name="post_list"),
    path("feed.xml", views.feed, name="feed"),
    path("archive/", views.archive, name="archive"),
    path("search/", views.search, name="search"),
    path("posts/<int:pk>/", views.post_detail, name="post_detail"),
    path("posts/<int:pk>/feed/", views.post_feed, name="post_feed"),
    path("members/", views.members, name="members"),
    path("posts/<int:pk>/comment/", views.add_comment, name="add_comment"),
    path("csrf/", views.csrf, name="csrf"),
]
