"""enduser.id never loads a lazy user after the response (loading it can flush the session or cycle
its key, signing the user out): on a failed request it is the key the session holds; a user the
request loaded, with ``request.user`` or ``await request.auser()``, is used as it is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("django")
from django.contrib.auth import SESSION_KEY  # noqa: E402
from django.utils.functional import SimpleLazyObject  # noqa: E402

from otel_launch._runtime.integrations.django import enduser  # noqa: E402


class Span:
    def __init__(self) -> None:
        self.attributes: dict[str, object] = {}

    def set_attribute(self, key: str, value: object) -> None:
        self.attributes[key] = value


class Session(dict):
    """A session that says whether it was changed."""

    def flush(self) -> None:
        raise AssertionError("the session was flushed")

    def cycle_key(self) -> None:
        raise AssertionError("the session's key was cycled")

    def __setitem__(self, key: str, value: object) -> None:
        raise AssertionError("the session was written")


def request_with_lazy_user(session: dict | None) -> tuple[SimpleNamespace, list[str]]:
    loads: list[str] = []

    def get_user() -> object:  # what django.contrib.auth.get_user would do: may flush the session
        loads.append("loaded")
        return SimpleNamespace(is_authenticated=True, pk=42)

    request = SimpleNamespace(user=SimpleLazyObject(get_user))
    if session is not None:
        request.session = session
    return request, loads


def test_a_failed_request_reads_the_key_its_session_holds_without_loading_the_user():
    request, loads = request_with_lazy_user(Session({SESSION_KEY: "42"}))
    span = Span()
    enduser.record(span, request, failed=True, is_asgi=False)
    assert loads == []
    assert span.attributes == {"enduser.id": "42"}


def test_an_anonymous_session_or_no_session_records_nothing():
    for session in (Session(), None):
        request, loads = request_with_lazy_user(session)
        span = Span()
        enduser.record(span, request, failed=True, is_asgi=False)
        assert (loads, span.attributes) == ([], {})


def test_a_successful_request_reads_nothing():
    request, loads = request_with_lazy_user(Session({SESSION_KEY: "42"}))
    span = Span()
    enduser.record(span, request, failed=False, is_asgi=False)
    assert (loads, span.attributes) == ([], {})


def test_a_user_loaded_by_auser_is_used_under_asgi():
    request, loads = request_with_lazy_user(Session())
    request._acached_user = SimpleNamespace(is_authenticated=True, pk=7)
    span = Span()
    enduser.record(span, request, failed=False, is_asgi=True)
    assert span.attributes == {"enduser.id": "7"}
    assert loads == []
