"""kiln-django's checks, as Django developers expect them: the test suite
against each supported Django, ruff, and mypy.

    pip install nox && nox          # everything
    nox -s tests                    # the Django matrix only
"""
from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# Each supported Django with a Python it supports (6.0 needs 3.12).
MATRIX = [("3.11", "4.2"), ("3.11", "5.2"), ("3.12", "6.0")]


@nox.session
@nox.parametrize("python,django", MATRIX)
def tests(session: nox.Session, django: str) -> None:
    session.install(f"Django~={django}.0", "redis>=4")
    session.install("-e", ".")
    session.run("python", "-m", "django", "test", "--settings=tests.settings", "tests", env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "kiln_django", "tests", "tests_wagtail", "noxfile.py")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install("mypy", "Django~=5.2.0")
    session.run("mypy", "kiln_django")
