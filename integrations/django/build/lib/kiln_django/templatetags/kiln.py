"""`{% load kiln %}{% kiln_tags post "sidebar" %}`: tags the page being rendered."""
from __future__ import annotations

from typing import Any

from django import template

from .. import tag

register = template.Library()


@register.simple_tag(takes_context=True)
def kiln_tags(context: template.Context, *things: Any) -> str:
    """Adds tags for model instances, querysets or strings; renders nothing.
    Needs the `request` context processor."""
    request = context.get("request")
    if request is None:
        raise template.TemplateSyntaxError(
            "{% kiln_tags %} needs the request: add "
            "'django.template.context_processors.request' to the template context processors"
        )
    tag(request, *things)
    return ""
