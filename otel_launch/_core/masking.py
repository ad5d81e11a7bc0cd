"""One masker for every place a secret could show: output, warnings, exporter logs, spans, log records.

The launcher's own output (``--print-config``, the doctor, warnings) and the data the target
exports (span attributes, exception events, status descriptions, log records) are masked here,
by one set of rules, so that a secret hidden in one place is hidden in every other:

- a password (or a lone token) before a URL's host is masked, the user is kept;
- query and fragment values are masked: all of them (``secret=None``, our own output), or
  those whose parameter name matches the ``OTEL_LAUNCH_REDACT`` pattern (exported data, where
  the other values help to debug);
- in free text, URLs are found and masked, so are ``user:password@host`` without a scheme,
  Authorization values (the scheme's word and the credential), ``name=value`` pairs whose name
  looks secret (``/p?token=...`` in urllib3's messages, ``password=...`` in a DSN), and the
  values the caller knows to be secret (export headers).

When in doubt the rules mask too much rather than too little (an ``@`` before the first ``/``
of a URL is taken for the end of its user part; so is one after it when a ``:`` comes before:
``http://host:8080/@scope/pkg`` loses its host and path, a password with a ``/`` never shows).
Standard library only: the bootstrap in the target reads it at interpreter start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re  # imported where a text holds something to mask: re costs the launcher ~25M instructions
    from collections.abc import Iterable
    from typing import Any

MASK = "***"
# Query parameter and header names whose values are secret (searched case-insensitively):
# passwords, tokens, keys, signatures, sessions, credentials, OAuth codes. The idea of
# ddtrace's default obfuscation, written for names: a value is never looked at.
REDACT_PATTERN = (
    r"pass(?:word|wd|phrase|code)?(?![a-z])|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|signature|session|cookie|(?<![a-z])auth(?:orization|entication)?(?![a-z])"
    r"|(?<![a-z])(?:key|sig|jwt|otp|sid)(?![a-z])|^code$"
)
# Header values shorter than this are not searched for in free text: they would blank out words.
MIN_SECRET_LENGTH = 4

_SEPARATORS = r"([&;])"


def mask_query(query: str, secret: re.Pattern[str] | None = None) -> str:
    """``a=1&token=x`` -> ``a=1&token=***``: the values whose name matches ``secret``, or every
    value when ``secret`` is None. ``&`` and ``;`` both separate parameters (servers accept
    either). Returns ``query`` itself when nothing changes, so callers can tell with ``is``."""
    from urllib.parse import unquote_plus  # here, not at import: urllib.parse costs every launch

    if ";" in query:
        import re

        items = re.split(_SEPARATORS, query)
    else:
        items = query.split("&")
    step = 2 if ";" in query else 1  # re.split keeps the separators at the odd indices
    changed = False
    for index in range(0, len(items), step):
        name, sep, value = items[index].partition("=")
        if not sep or not value or value == MASK:
            continue
        if secret is not None:
            decoded = unquote_plus(name) if "%" in name or "+" in name else name
            if not secret.search(decoded):
                continue
        items[index] = f"{name}={MASK}"
        changed = True
    if not changed:
        return query
    return "".join(items) if step == 2 else "&".join(items)


def mask_userinfo(url: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``; a lone ``token@`` is all
    secret. The user part ends at the last ``@`` before the first ``/`` (masking a query's
    ``@`` rather than letting a password with ``?`` or ``#`` in it through). A password may
    hold a ``/`` too (base64, a DSN SQLAlchemy accepts unencoded): when no ``@`` comes before
    the first ``/`` but a ``:`` does, the user part ends at the last ``@`` after it (before
    the query when ``host:digits`` could be a port, anywhere when it cannot)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, after = authority.rpartition("@")
        after += slash + path
    else:
        colon = authority.find(":")
        if colon == -1 or authority.startswith("["):  # no password, or an IPv6 literal host
            return url
        end = len(rest)
        if authority[colon + 1 :].isdigit():  # host:port/...: an "@" in the query is an e-mail's
            end = min((index for index in (rest.find("?"), rest.find("#")) if index != -1), default=end)
        at = rest.rfind("@", 0, end)
        if at == -1:
            return url
        userinfo, after = rest[:at], rest[at + 1 :]
    user, has_password, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}@" if has_password and user else f"{MASK}@"
    return f"{scheme}://{masked}{after}"


def mask_url(url: str, secret: re.Pattern[str] | None = None) -> str:
    """A URL or a target (``/path?query#fragment``): the password before the host, and the query
    and fragment values (all, or those named like ``secret``) masked. Returns ``url`` itself when
    nothing changes."""
    result = mask_userinfo(url) if "@" in url else url
    # RFC 3986: the fragment starts at the first "#", the query at the first "?" before it.
    head, hash_, fragment = result.partition("#")
    head, question, query = head.partition("?")
    if question:
        query = mask_query(query, secret)
    if hash_ and "=" in fragment:  # OAuth's implicit flow puts access_token=... in the fragment
        fragment = mask_query(fragment, secret)
    rebuilt = f"{head}{question}{query}{hash_}{fragment}"
    return url if rebuilt == url else rebuilt


_URL_IN_TEXT = r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+"
# "user:password@host" with no scheme, as the gRPC exporter prints its target.
# The password may hold a "/" but not start with "//" (a URL's "scheme://", masked already); the
# user does not start inside a URL's path or host (after "/", ":" or "[").
_USERINFO_IN_TEXT = r"(?<![\w.+/:\[-])([^\s:/@'\"<>]+):(?!//)[^\s@'\"<>]+@(?=[^\s/@'\"<>])"
# name=value in free text (a query without its URL, a key=value DSN); the value is quoted, or
# runs to a space, a separator or a quote.
_PAIR_IN_TEXT = r"([\w.%+-]+)=('[^']*'|\"[^\"]*\"|[^\s&;'\"]+)"
# An Authorization or Proxy-Authorization value (``name=``, ``name: ``, ``'name': '``): the scheme's
# word and the credential after it (token68: up to a space, quote, ``,`` ``;`` ``&``), masked whole; a
# word after a lone token is masked too.
_AUTH_IN_TEXT = (
    r"(?i)((?<![a-z])(?:proxy[-_])?authorization['\"]?[ \t]*[:=][ \t]*['\"]?)"
    r"(?:[a-z][\w.+-]*[ \t]+)?[^\s'\",;&]+"
)
# The same, in a comma-separated list (a headers setting's value).
_PAIR_IN_LIST = r"([\w.%+-]+)=([^\s&;,'\"]+)"
# Patterns are source text, compiled (and cached by re) at their first use: this module is
# imported at every interpreter start, where compiling them would cost ~2.5 ms.


def mask_text(
    text: str, secret: re.Pattern[str] | None = None, values: Iterable[str] = (), settings_row: bool = False
) -> str:
    """Free text (a log line, an exception message, a stack trace) as it may be shown: URLs
    masked (``mask_url`` with ``secret``), ``user:password@``, Authorization values,
    ``name=value`` pairs named like ``secret`` (the built-in pattern when None) and every one of
    ``values`` hidden. ``settings_row``: the text is one of the doctor's rows, whose
    ``OTEL_*=value`` was masked by the setting's own rule (a key file's path is no secret);
    anywhere else such a pair is free text like any other. Returns ``text`` itself when
    nothing changes."""
    # ``re`` is imported by the branch that uses it: a text with none of these marks (a service
    # name's reason, often) needs no re, which costs the launcher ~25M instructions.
    result = text
    if "://" in result:
        import re

        result = re.sub(_URL_IN_TEXT, lambda match: mask_url(match.group(0), secret), result)
    if "@" in result:
        import re

        result = re.sub(_USERINFO_IN_TEXT, lambda match: f"{match.group(1)}:{MASK}@", result)
    if "uthorization" in result or "UTHORIZATION" in result:
        import re

        result = re.sub(_AUTH_IN_TEXT, lambda match: f"{match.group(1)}{MASK}", result)
    if "=" in result:
        import re
        from urllib.parse import unquote_plus

        names = secret or re.compile(REDACT_PATTERN, re.IGNORECASE)  # re's cache: compiled once

        def pair(match: re.Match[str]) -> str:
            name, value = match.group(1), match.group(2)
            if value == MASK:
                return match.group(0)
            # A setting's row (the doctor's) was masked by the setting's own rule already.
            if (settings_row and name.startswith("OTEL_")) or not names.search(
                unquote_plus(name) if "%" in name or "+" in name else name
            ):
                if "=" in value:  # OTEL_EXPORTER_OTLP_HEADERS=authorization=...,x=...: the pairs inside
                    return f"{name}={re.sub(_PAIR_IN_LIST, pair, value)}"
                return match.group(0)
            return f"{name}={MASK}"

        result = re.sub(_PAIR_IN_TEXT, pair, result)
    for value in values:
        if value in result:
            result = result.replace(value, MASK)
    return text if result == text else result


def secret_values(raw_values: Iterable[str]) -> tuple[str, ...]:
    """What to hide in free text for these secret values (header values, mostly): each one as
    written and URL-decoded, and the credential after an auth scheme (``Bearer x`` -> ``x``);
    longest first, so that a value containing another is hidden whole."""
    found: set[str] = set()
    for raw in raw_values:
        decoded = raw
        if "%" in raw:  # urllib.parse (with re and ipaddress, ~35M instructions) only to decode
            from urllib.parse import unquote

            decoded = unquote(raw)
        for text in (raw.strip(), decoded.strip()):
            for candidate in (text, text.rpartition(" ")[2]):
                if len(candidate) >= MIN_SECRET_LENGTH:
                    found.add(candidate)
    return tuple(sorted(found, key=len, reverse=True))


def header_values(raw_settings: Iterable[str] = (), file_data: Any = None) -> list[str]:
    """The header values of export settings (``name=value,...``: ``OTEL_EXPORTER_OTLP_HEADERS`` and
    the per-signal ones) and of a parsed configuration file (its model or plain data: ``headers``
    and ``headers_list``): what no message may show, longest first. An item without ``=`` counts
    whole (a pasted token; the configuration package logs such an item)."""
    found: list[str] = []
    for raw in raw_settings:
        found += _pair_values(raw)
    if file_data is not None:
        _file_header_values(file_data, found)
    return sorted({item for item in found if item}, key=len, reverse=True)


def _pair_values(raw: str) -> list[str]:
    values = []
    for pair in raw.split(","):
        name, equals, value = pair.partition("=")
        values.append((value if equals else name).strip())
    return values


def _file_header_values(value: Any, found: list[str]) -> None:
    # A model is a dataclass; its fields are read without importing dataclasses (start-up time).
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type):
        value = {name: getattr(value, name, None) for name in fields}
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "headers_list" and isinstance(item, str):
                found += _pair_values(item)
            elif key == "headers" and isinstance(item, list):
                for header in item:
                    secret = header.get("value") if isinstance(header, dict) else getattr(header, "value", None)
                    found.append(str(secret or "").strip())
            else:
                _file_header_values(item, found)
    elif isinstance(value, list):
        for item in value:
            _file_header_values(item, found)
