from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("posts/", views.PostList.as_view()),
    path("posts/<int:pk>/", views.PostDetail.as_view()),
    path("about/", views.about),
    path("reads/", views.reads),
    path("hello/", views.with_login_link),
    path("form/", views.with_form),
]
