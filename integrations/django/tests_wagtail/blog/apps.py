from django.apps import AppConfig


class BlogConfig(AppConfig):
    name = "tests_wagtail.blog"
    label = "blog"
