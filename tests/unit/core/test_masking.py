"""The one masker (otel_launch/_core/masking.py), property-tested on the shapes its callers give it:
a URL (password before the host, every query value), free text (URLs and schemeless
``user:password@``), configured header values (raw and URL-decoded: the runtime's warnings and
exporter logs, the doctor), secret-named query values and the password before the host of a
span's URL (the span and log record processors). In every shape, the secret never comes through.

Secrets are drawn from what may stand unencoded in a URL's user part or query (RFC 3986's
unreserved and sub-delims, ``%``, ``:``, ``@``), minus what ends a URL in free text (spaces,
quotes, ``<>``: a message's quotes delimit its URLs) and the separators ``&`` ``;`` ``#``
``/`` ``?`` ``=``, which a secret cannot hold unencoded without changing the URL's meaning;
except a password's ``/`` (and ``?`` after it): base64 holds one, SQLAlchemy takes it unencoded.
"""

from __future__ import annotations

import contextlib
import io
import re
import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from otel_launch._core.masking import MASK, REDACT_PATTERN, mask_query, mask_text, mask_url, secret_values
from otel_launch._core.parsers import has_userinfo
from otel_launch._core.settings import BY_NAME, CHECKED_BY_ENV
from otel_launch._launcher import doctor as _doctor
from otel_launch._runtime import _log, _scrub

SECRET_NAMES = re.compile(REDACT_PATTERN, re.IGNORECASE)


def _warned(text: str) -> str:
    """The runtime's warning line for a message (this process's export header values hidden too)."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        _log.warn(text)
    return out.getvalue()


def _in_a_span_url(url: str) -> str:
    """A client span's ``url.full`` as the span processor leaves it."""
    return (_scrub.redact_attributes({"url.full": url}, SECRET_NAMES, headers=False) or {}).get("url.full", url)


def _in_an_event(text: str) -> str:
    """A span event's free-text attribute as the span processor leaves it."""
    return (_scrub.redact_mapping({"exception.message": text}, SECRET_NAMES) or {}).get("exception.message", text)


_SAFE = string.ascii_letters + string.digits + "-._~!$()*+,%"
secrets = st.text(alphabet=_SAFE + ":@", min_size=4, max_size=24).map(lambda s: "S3c" + s)
# A password with a "/" in it (and maybe "?", "@" after it): "user:pa/ss@host" is no host:port.
slash_secrets = st.tuples(
    st.text(alphabet=_SAFE + ":@", max_size=12), st.text(alphabet=_SAFE + ":@/?", max_size=12)
).map(lambda parts: f"S3c{parts[0]}/{parts[1]}")
query_secrets = st.text(alphabet=_SAFE + ":@/?", min_size=4, max_size=24).map(lambda s: "S3c" + s)
words = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10)
hosts = st.builds(lambda a, b: f"{a}.{b}", words, st.sampled_from(["com", "internal", "local"]))
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
paths = st.lists(words, max_size=3).map(lambda parts: "".join(f"/{p}" for p in parts))
schemes = st.sampled_from(["http", "https", "postgresql", "redis", "amqp", "grpc"])
secret_names = st.sampled_from(
    ["token", "access_token", "password", "passwd", "api_key", "apiKey", "secret", "client_secret", "sig", "auth"]
)
plain_names = st.sampled_from(["page", "q", "sort", "lang", "limit"])
# Free text around a URL: words, spaces and punctuation that ends a URL or a sentence.
text_around = st.text(alphabet=string.ascii_letters + " ,;:()[]\"'\n", max_size=20)
examples = settings(max_examples=300, deadline=None)


def _no_secret_elsewhere(secret: str, *parts: str) -> None:
    assume(all(secret not in part and part not in (secret,) for part in parts))


@examples
@given(schemes, words, secrets, hosts, ports, paths)
def test_a_password_before_the_host_never_comes_through(scheme, user, password, host, port, path):
    _no_secret_elsewhere(password, user, host, path)
    url = f"{scheme}://{user}:{password}@{host}{port}{path}"
    for masked in (mask_url(url), mask_url(url, SECRET_NAMES), BY_NAME["endpoint"].shown(url)):
        assert password not in masked
        assert masked.startswith(f"{scheme}://{user}:{MASK}@")
    assert password not in _in_a_span_url(url)


@examples
@given(schemes, secrets.filter(lambda s: ":" not in s), hosts, paths)
def test_a_lone_token_before_the_host_never_comes_through(scheme, token, host, path):
    _no_secret_elsewhere(token, host, path)
    assert token not in mask_url(f"{scheme}://{token}@{host}{path}")


@examples
@given(st.one_of(schemes.map(lambda s: f"{s}://h.com"), st.just("")), paths, plain_names, words, query_secrets)
def test_every_query_value_is_hidden_in_our_output(base, path, name, value, secret):
    url = f"{base}{path or '/'}?{name}={secret}&{name}2={value}"
    masked = mask_url(url)
    assert secret not in masked and f"{name}2={MASK}" in masked


@examples
@given(paths, secret_names, query_secrets, plain_names, words, st.sampled_from(["&", ";"]), st.booleans())
def test_secret_named_values_are_hidden_in_spans_and_the_rest_kept(path, name, secret, plain, value, sep, fragment):
    _no_secret_elsewhere(secret, path, value)
    where = "#" if fragment else "?"  # OAuth's implicit flow puts the token in the fragment
    url = f"{path or '/'}{where}{plain}={value}{sep}{name}={secret}"
    masked = mask_url(url, SECRET_NAMES)
    assert secret not in masked
    assert f"{plain}={value}" in masked and f"{name}={MASK}" in masked
    assert mask_query(f"{plain}={value}{sep}{name}={secret}", SECRET_NAMES) == f"{plain}={value}{sep}{name}={MASK}"


@examples
@given(text_around, schemes, words, secrets, hosts, paths, secret_names, query_secrets, text_around)
def test_urls_in_free_text_never_carry_a_secret(before, scheme, user, password, host, path, name, token, after):
    _no_secret_elsewhere(password, before, after, user, host, path, name)
    _no_secret_elsewhere(token, before, after, user, host, path, name)
    url = f"{scheme}://{user}:{password}@{host}{path}?{name}={token}"
    text = f"{before} {url} {after}"
    for masked in (mask_text(text), mask_text(text, SECRET_NAMES), _warned(text), _in_an_event(text)):
        assert password not in masked and token not in masked


@examples
@given(text_around, words, secrets, hosts, ports, text_around)
def test_schemeless_user_and_password_in_free_text(before, user, password, host, port, after):
    assume("@" not in password)  # "a:b@c@host" without a scheme: which @ ends the user part is unknowable
    _no_secret_elsewhere(password, before, after, user, host)
    text = f"{before} {user}:{password}@{host}{port} {after}"
    assert password not in mask_text(text)


@examples
@given(text_around, secret_names, query_secrets, st.sampled_from(["/p?", " ", "host=db ", "&"]), text_around)
def test_secret_named_pairs_in_free_text(before, name, secret, lead, after):
    """urllib3's "Max retries exceeded with url: /p?token=...", a key=value DSN."""
    assume("=" not in secret)
    _no_secret_elsewhere(secret, before, after)
    text = f"{before} {lead}{name}={secret} {after}"
    assert secret not in mask_text(text, SECRET_NAMES)
    assert secret not in mask_text(text)  # the built-in pattern, for our own output


@examples
@given(text_around, st.sampled_from(["", "Bearer ", "Basic "]), secrets, st.booleans(), text_around)
def test_configured_header_values_never_come_through(before, scheme, value, encoded, after):
    """The runtime (export headers of the environment) and the doctor (its config's headers)."""
    from urllib.parse import quote

    written = quote(scheme + value, safe="") if encoded else scheme + value
    _no_secret_elsewhere(value, before, after)
    hidden = secret_values([written])
    for shown in (f"{scheme}{value}", value, written):
        text = f"{before}{shown}{after}"
        assert value not in mask_text(text, values=hidden)


@examples
@given(text_around, schemes, words, secrets, hosts, secret_names, query_secrets, text_around)
def test_masking_twice_changes_nothing_more(before, scheme, user, password, host, name, token, after):
    text = f"{before} {scheme}://{user}:{password}@{host}/p?{name}={token} {after}"
    once = mask_text(text, SECRET_NAMES)
    assert mask_text(once, SECRET_NAMES) == once


def test_the_settings_mask_their_urls_with_the_one_masker():
    assert (
        BY_NAME["endpoint"].mask is mask_url and CHECKED_BY_ENV["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].mask is mask_url
    )


def test_settings_rows_keep_what_their_own_mask_kept():
    """The doctor's "setting:" rows are masked by each setting's rule: a key file's path is no secret.
    Only those rows: the same pair in any other text is masked like any secret-named pair."""
    row = "setting: OTEL_EXPORTER_OTLP_CLIENT_KEY=/etc/otel/client.key  (pass-through, from env)"
    assert mask_text(row, settings_row=True) == row
    assert "/etc/otel" not in mask_text(row)


def test_a_headers_row_keeps_its_names():
    row = "setting: OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-traces-key=***,x-team=***  (pass-through, from env)"
    assert mask_text(row) == row == mask_text(row, settings_row=True)
    leaked = "env: OTEL_EXPORTER_OTLP_HEADERS=api-key=k-123,x-team=web"
    assert mask_text(leaked) == "env: OTEL_EXPORTER_OTLP_HEADERS=api-key=***,x-team=web"


@examples
@given(text_around, schemes, words, slash_secrets, hosts, ports, paths, text_around)
def test_a_password_with_a_slash_never_comes_through(before, scheme, user, password, host, port, path, after):
    _no_secret_elsewhere(password, before, after, user, host, path)
    url = f"{scheme}://{user}:{password}@{host}{port}{path}"
    for masked in (
        mask_url(url),
        mask_url(url, SECRET_NAMES),
        BY_NAME["endpoint"].shown(url),
        _in_a_span_url(url),
    ):
        assert password not in masked
        assert masked.startswith(f"{scheme}://{user}:{MASK}@")
    assert password not in mask_text(f"{before} {url} {after}")
    assert has_userinfo(url)  # the otlp_grpc refusal of a user part


@examples
@given(text_around, words, slash_secrets.map(lambda s: s.replace("@", "")), hosts, ports, text_around)
def test_a_schemeless_password_with_a_slash_never_comes_through(before, user, password, host, port, after):
    _no_secret_elsewhere(password, before, after, user, host)
    text = f"{before} {user}:{password}@{host}{port} {after}"
    assert password not in mask_text(text) and password not in _warned(text)


def test_a_slash_password_in_the_reviewers_shapes():
    assert mask_text("https://user:p/ss@host/x") == "https://user:***@host/x"
    assert mask_text("ann:Pw/Sec@db:5432") == "ann:***@db:5432"
    assert mask_text("postgresql://ann:12/34@db/shop") == "postgresql://ann:***@db/shop"  # digits: no port either
    assert has_userinfo("http://u:p/ss@host:4317") and not has_userinfo("http://host:4317/v1")
    # What stays: an e-mail in the query after a port, a path's "@" with no ":" before it.
    assert mask_url("http://h.com:8080/p?to=a@b.com", SECRET_NAMES) == "http://h.com:8080/p?to=a@b.com"
    assert mask_text("see https://h.com/@ann, http://[::1]:4317/@x") == "see https://h.com/@ann, http://[::1]:4317/@x"


auth_names = st.sampled_from(
    ["Authorization", "authorization", "Proxy-Authorization", "proxy_authorization", "HTTP_AUTHORIZATION"]
)
auth_shapes = st.sampled_from(["{n}={v}", "{n}: {v}", "{n}:{v}", "'{n}': '{v}'", '"{n}": "{v}"'])
auth_schemes = st.sampled_from(["Bearer ", "Basic ", "Token ", "Negotiate ", "bearer  ", ""])
tokens = st.text(alphabet=string.ascii_letters + string.digits + "-._~+/", min_size=4, max_size=24).map(
    lambda s: "T0k" + s + "=="
)


@examples
@given(text_around, auth_names, auth_shapes, auth_schemes, tokens, text_around)
def test_an_authorization_value_is_masked_whole(before, name, shape, scheme, token, after):
    """``Authorization=Bearer TOK`` in a log line, ``{'Authorization': 'Bearer TOK'}`` in a repr: the
    credential after the scheme is what matters, whatever header value this process has."""
    _no_secret_elsewhere(token, before, after)
    text = f"{before} {shape.format(n=name, v=scheme + token)} {after}"
    for masked in (
        mask_text(text),
        mask_text(text, SECRET_NAMES),
        _warned(text),
        _in_an_event(text),
    ):
        assert token not in masked
        assert shape.format(n=name, v=MASK) in masked  # the scheme's word went with it, the name stays


@examples
@given(
    text_around,
    st.sampled_from(["OTEL_FOO_PASSWORD", "OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_APP_TOKEN", "OTEL_X_API_KEY"]),
    secrets.filter(lambda s: "=" not in s),
    text_around,
)
def test_otel_named_pairs_in_exported_text_are_masked(before, name, value, after):
    """An app's exception message or log line: ``OTEL_*=`` is no setting row of the doctor's there."""
    _no_secret_elsewhere(value, before, after)
    text = f"{before} {name}={value} {after}"
    for masked in (
        mask_text(text),
        mask_text(text, SECRET_NAMES),
        _warned(text),
        _in_an_event(text),
    ):
        assert value not in masked


def test_the_doctor_keeps_its_setting_rows(tmp_path):
    """run_doctor marks its "setting:" rows, and only them, as masked by their own rule."""
    import io

    from otel_launch._launcher.config import Config

    key = tmp_path / "client.key"
    key.write_text("x")
    off = {f"OTEL_{signal}_EXPORTER": "none" for signal in ("TRACES", "METRICS", "LOGS")}
    out = io.StringIO()
    assert _doctor.run_doctor(Config(environ={**off, "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(key)}), (), 2.0, out) == 0
    assert f"setting: OTEL_EXPORTER_OTLP_CLIENT_KEY={key}  (pass-through" in out.getvalue()
