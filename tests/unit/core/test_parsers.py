"""The parsers answer as urllib.parse would, without importing it (nor re): the launcher checks
every value before every launch, where importing them costs more than the rest of its work."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_launch._core.masking import mask_userinfo
from otel_launch._core.parsers import SettingValueError, _quoted, _unquoted, endpoint, has_userinfo

_ESCAPES = st.sampled_from(["%20", "%2C", "%3d", "%C3", "%A9", "%E2%82%AC", "%FF", "%00", "%7e"])
_TEXT = st.lists(st.one_of(_ESCAPES, st.sampled_from([*"aZ09-_.~ =,/:@", "é", "€", "\U0001f600"])), max_size=10)


@settings(max_examples=2000, deadline=None)
@given(_TEXT.map("".join))
def test_percent_decoding_is_unquote(text):
    try:
        expected: str | None = unquote(text, errors="strict")
    except UnicodeDecodeError:
        expected = None
    try:
        found: str | None = _unquoted(text)
    except UnicodeDecodeError:
        found = None
    assert found == expected


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=12))
def test_percent_encoding_is_quote(text):
    try:
        expected: str | None = quote(text, safe="")
    except UnicodeEncodeError:
        expected = None
    try:
        found: str | None = _quoted(text)
    except UnicodeEncodeError:
        found = None
    assert found == expected


def _accepted_by_urlsplit(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


_URL_PIECES = ["http", "https", "HTTP", "://", ":", "/", "?", "#", "@", "[", "]", "::1", "host", "a.b-c", "4317"]
_URL_PIECES += ["0", "65535", "65536", "99999", "00080", "é", "%", "_", "u:p", "٣"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_URL_PIECES), max_size=8).map("".join))
def test_endpoints_are_accepted_as_urlsplit_accepts_them(value):
    try:
        accepted = endpoint(value) == value
    except SettingValueError:
        accepted = False
    assert accepted == _accepted_by_urlsplit(value)
    try:
        netloc_user = "@" in urlsplit(value).netloc
    except ValueError:
        netloc_user = False
    else:
        netloc_user = netloc_user or mask_userinfo(value) != value
    assert has_userinfo(value) == netloc_user


@pytest.mark.parametrize("value", ["http://localhost:4317", "https://collector.example.com/v1", "http://10.0.0.1:0"])
def test_plain_endpoints_are_accepted(value):
    assert endpoint(value) == value
