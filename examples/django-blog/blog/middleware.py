class ServedByDjangoMiddleware:
    """Marks responses that came from Django (not from kiln's files via nginx)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Served-By"] = "django"
        return response
