"""The request path's lean readers of the WSGI environ and the ASGI scope give what the contrib's
collectors give, in each semconv mode, side by side: the duration histograms' attributes, and
every span attribute of a sampled WSGI request."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("django")

from opentelemetry.instrumentation._semconv import (  # noqa: E402
    _report_new,
    _report_old,
    _server_duration_attrs_new,
    _server_duration_attrs_old,
    _StabilityMode,
)
from opentelemetry.instrumentation.asgi import collect_request_attributes as collect_asgi  # noqa: E402
from opentelemetry.instrumentation.wsgi import collect_request_attributes as collect_wsgi  # noqa: E402

from otel_launch._runtime.integrations.django import request  # noqa: E402

MODES = [_StabilityMode.DEFAULT, _StabilityMode.HTTP, _StabilityMode.HTTP_DUP]
KEPT = {*_server_duration_attrs_old, *_server_duration_attrs_new, "http.target"}

ENVIRONS = [
    {
        "REQUEST_METHOD": "GET",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "shop.example:8000",
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "RAW_URI": "/orders/?page=2",
        "PATH_INFO": "/orders/",
        "QUERY_STRING": "page=2",
        "REMOTE_ADDR": "10.0.0.1",
    },
    {  # no Host, no RAW_URI (REQUEST_URI instead), a method nobody knows, HTTP/2
        "REQUEST_METHOD": "BREW",
        "SERVER_NAME": "shop",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "SERVER_PROTOCOL": "HTTP/2",
        "REQUEST_URI": "/pot",
        "PATH_INFO": "/pot",
    },
    {"REQUEST_METHOD": "post", "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
]

SCOPES = [
    {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "http_version": "1.1",
        "path": "/orders/",
        "query_string": b"page=2",
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 50000),
        "headers": [(b"host", b"shop.example:8000"), (b"user-agent", b"curl/8")],
    },
    {  # default port, no Host, a method nobody knows
        "type": "http",
        "method": "BREW",
        "scheme": "https",
        "http_version": "2",
        "path": "/pot",
        "server": ("shop", 80),
        "headers": [],
    },
    {"type": "http", "method": "GET", "path": "/", "headers": [(b"Host", b"a"), (b"host", b"b")]},  # no server
]


def kept(attributes: dict) -> dict:
    return {key: value for key, value in attributes.items() if key in KEPT}


def config(mode: _StabilityMode) -> types.SimpleNamespace:
    return types.SimpleNamespace(old=_report_old(mode), new=_report_new(mode))


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("environ", ENVIRONS, ids=["full", "no-host", "lowercase-method"])
def test_the_wsgi_reader_gives_what_the_wsgi_collector_gives(mode, environ):
    assert kept(request._metric_attributes(environ, config(mode))) == kept(collect_wsgi(environ, mode))


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("scope", SCOPES, ids=["full", "default-port", "no-server-two-hosts"])
def test_the_asgi_reader_gives_what_the_asgi_collector_gives(mode, scope):
    assert kept(request._asgi_metric_attributes(scope, config(mode))) == kept(collect_asgi(scope, mode))


REQUESTS = [
    *ENVIRONS,
    {  # what a browser sends through gunicorn: a user agent, a peer, a query
        **ENVIRONS[0],
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "REMOTE_PORT": "51234",
    },
    {**ENVIRONS[0], "HTTP_USER_AGENT": "Googlebot/2.1 (+http://www.google.com/bot.html)", "REMOTE_HOST": "crawler"},
    {**ENVIRONS[0], "REQUEST_METHOD": " get ", "REMOTE_PORT": "not-a-port", "SERVER_PROTOCOL": "http/1.0"},
    {  # no target at all: the URL rebuilt from the environ (and its secrets redacted)
        "REQUEST_METHOD": "GET",
        "SERVER_NAME": "shop",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "user:pw@shop:8000",
        "wsgi.url_scheme": "http",
        "PATH_INFO": "/p",
        "QUERY_STRING": "sig=abc",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.2",
        "REMOTE_HOST": "10.0.0.2",
    },
]


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("environ", REQUESTS, ids=[f"environ-{n}" for n in range(len(REQUESTS))])
def test_the_lean_wsgi_collector_gives_what_the_contribs_gives_in_its_order(mode, environ):
    """Every span attribute of a sampled request, not only the duration's: keys, values and order."""
    c = types.SimpleNamespace(old=_report_old(mode), new=_report_new(mode), mode=mode)
    assert list(request._wsgi_request_attributes(environ, c).items()) == list(collect_wsgi(environ, mode).items())
