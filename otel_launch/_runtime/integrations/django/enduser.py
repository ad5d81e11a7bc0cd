"""``enduser.id`` on server spans: who saw the error. Opt-in (``OTEL_LAUNCH_ENDUSER_ID``), never by default.

The value is the primary key of the request's authenticated user, as text (the semantic
conventions' ``enduser.id``: an identifier of the user in the system; a key, never a name or an
address). It is read when the response is done, from ``request.user``:

- when the app already loaded it (a view, ``login_required``, a permission check, a template, or
  Django REST framework's authentication, which sets it on the Django request): nothing more is
  asked of the database;
- when it did not (Django's ``AuthenticationMiddleware`` makes it a lazy object, loaded at first
  use): only for a failed request (5xx or an exception), and only under WSGI, the key the session
  holds (``django.contrib.auth.SESSION_KEY``) is read: one session read, no user query, and nothing
  written. Loading the user there instead could flush the session or change its key (a password
  hash that no longer matches, a rotated ``SECRET_KEY``) after ``SessionMiddleware`` saved it: the
  user would be signed out by the telemetry. A request that succeeded is not worth the read; an
  async request cannot run it from here, but a user it loaded with ``auser()`` is used.

Anonymous users and requests without a user (no auth middleware) record nothing. Scrubbing is
unchanged: the key is recorded as it is, and the setting is the decision to record it.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import empty

ENDUSER_ID = "enduser.id"


def record(span: Any, request: Any, failed: bool, is_asgi: bool) -> None:
    """Set ``enduser.id`` on a recording server span from the request's user, when there is one."""
    attributes = request.__dict__
    user = attributes.get("user")
    if user is None:
        return
    try:
        loaded = object.__getattribute__(user, "_wrapped")  # a SimpleLazyObject's, read without loading it
    except AttributeError:  # the user itself (Django REST framework sets it)
        loaded = user
    if loaded is empty:
        loaded = attributes.get("_acached_user", empty)  # what ``await request.auser()`` loaded
    try:
        if loaded is not empty:
            key = loaded.pk if loaded.is_authenticated else None
        elif failed and not is_asgi:
            key = _session_key(request)
        else:
            return
    except Exception:  # the database may be why the request failed: the span goes without
        return
    if key is not None:
        span.set_attribute(ENDUSER_ID, str(key))


def _session_key(request: Any) -> Any:
    """The signed-in user's key as the session stores it, or None: read only, the user not loaded."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    from django.contrib.auth import SESSION_KEY

    return session.get(SESSION_KEY)
