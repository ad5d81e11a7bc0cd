"""The values of settings: parsers from text (each raising :class:`SettingValueError` with what it
accepts), renderers back to the text of a variable, and how a value may be shown in output
(secrets masked, a refused value echoed). Standard library only, like the rest of the core.
"""

from __future__ import annotations

from otel_launch._core.masking import MASK, REDACT_PATTERN, mask_userinfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class SettingValueError(ValueError):
    """A value a setting does not accept; the message says what it does accept."""


# --- parsers: text -> value, raising SettingValueError(what is accepted) ---------------------


def text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise SettingValueError("a non-empty text")
    return value


def bad_text(raw: str) -> str | None:
    """Why a value can never be right, whatever the setting: None when it may be.

    Text from the OS that is not valid UTF-8 arrives as surrogate escapes and breaks the
    encoding of the attribute or header it ends up in; a control character (a newline in a
    header, a service name) breaks the line or the protocol it is written to.
    """
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is valid UTF-8"
    if not _CONTROL.isdisjoint(raw):
        return "text without control characters (newline, tab, ...)"
    return None


# The character classes the checks below are made of (``string``'s would import re).
LOWER = "abcdefghijklmnopqrstuvwxyz"
LETTERS = LOWER + LOWER.upper()
DIGITS = "0123456789"

# Every value of every setting is checked, so these checks use no regular expression: importing
# and compiling ``re`` would cost every launch ~25M instructions (with enum), a third of it.
_CONTROL = frozenset(map(chr, [*range(0x20), 0x7F]))
_HEX = frozenset(DIGITS + "abcdefABCDEF")


def _bad_escape(text: str) -> bool:
    """Whether a '%' is not followed by two hex digits: the SDK would pass it on undecoded."""
    start = text.find("%")
    while start != -1:
        if not (start + 2 < len(text) and text[start + 1] in _HEX and text[start + 2] in _HEX):
            return True
        start = text.find("%", start + 1)
    return False


def _decode(text: str, accepted: str) -> str:
    """Percent-decode strictly: bad escapes and escapes of invalid UTF-8 are refused."""
    if "%" not in text:
        return text
    if _bad_escape(text):
        raise SettingValueError(accepted + " (a '%' must start an escape such as %20)")
    try:
        return _unquoted(text)
    except UnicodeDecodeError:
        raise SettingValueError(accepted + " (escapes must decode to UTF-8)") from None


def _unquoted(text: str) -> str:
    """``urllib.parse.unquote(text, errors="strict")`` of a text whose every '%' starts an escape,
    without importing urllib.parse (with re and ipaddress: ~35M instructions a launch). As there,
    each run of ASCII characters is decoded from UTF-8 by itself; other characters stay as they are."""
    decoded: list[str] = []
    run = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            run.append(int(text[index + 1 : index + 3], 16))
            index += 3
            continue
        if char.isascii():
            run.append(ord(char))
        else:
            decoded += [run.decode("utf-8"), char]
            run.clear()
        index += 1
    decoded.append(run.decode("utf-8"))
    return "".join(decoded)


def choices(*names: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in names:
            raise SettingValueError("one of " + ", ".join(names))
        return value

    return parse


def choice_list(*names: str) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names; ``none`` alone turns the feature off."""

    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))
        accepted = "a comma-separated list of " + ", ".join(names) + ", or none"
        if not items:
            raise SettingValueError(accepted)
        if "none" in items:
            if len(items) > 1:
                raise SettingValueError(accepted + " (none cannot be combined)")
            return ()
        unknown = [item for item in items if item not in names]
        if unknown:
            raise SettingValueError(accepted)
        return items

    return parse


def number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    lower = f"greater than {low:g}" if low_open else f"from {low:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingValueError(f"a number {lower} to {high:g}") from None
        too_low = value <= low if low_open else value < low
        if too_low or value > high or value != value:  # NaN compares unequal to itself
            raise SettingValueError(f"a number {lower} to {high:g}")
        return value

    return parse


INT_MAX = 2**31 - 1  # the SDK passes these on to deques, waits and protobuf fields


def integer(low: int, high: int = INT_MAX, *, unset: bool = False) -> Callable[[str], int | None]:
    accepted = f"a whole number from {low} to {high}" + (", or unset" if unset else "")

    def parse(raw: str) -> int | None:
        text = raw.strip()
        if unset and text.lower() == "unset":
            return None
        try:
            value = int(text)  # as the SDK reads them: int(), so no "1.5", no "1e3"
        except ValueError:
            raise SettingValueError(accepted) from None
        if not low <= value <= high:
            raise SettingValueError(accepted)
        return value

    return parse


def boolean(raw: str) -> bool:
    # The SDK reads anything but "true" as false: "maybe" or "1" would silently mean false.
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise SettingValueError("true or false")
    return value == "true"


def existing_file(raw: str) -> str:
    import os

    if not os.path.isfile(raw):
        raise SettingValueError("the path of a file that exists")
    return raw


def key_values(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` with percent-encoded values, as the SDK reads OTEL_RESOURCE_ATTRIBUTES."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
        pairs[key.strip()] = _decode(value.strip(), "comma-separated key=value pairs, e.g. team=web,region=eu")
    if not pairs:
        raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
    return pairs


# An HTTP header name is a token (RFC 9110): these characters, at least one.
_TOKEN = frozenset("!#$%&'*+.^_`|~-" + DIGITS + LETTERS)


def headers(raw: str) -> dict[str, str]:
    """``name=value,...`` with percent-encoded parts, as the OTLP exporters read them."""
    accepted = "comma-separated name=value pairs with URL-encoded values, e.g. api-key=abc%20123"
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = _decode(name.strip(), accepted)
        if not sep or not name or not _TOKEN.issuperset(name):
            raise SettingValueError(accepted)
        # gRPC metadata and HTTP header values are printable ASCII; the exporters fail every
        # export on anything else (and their error prints the whole header, token included).
        decoded = _decode(value.strip(), accepted).strip()
        if not (decoded.isascii() and decoded.isprintable()):  # ASCII's printable: 0x20 to 0x7e
            raise SettingValueError(accepted + " (values must decode to printable ASCII, no CR/LF)")
        headers[name.lower()] = decoded
    if not headers:
        raise SettingValueError(accepted)
    return headers


_HOST_CHARACTERS = frozenset(LETTERS + DIGITS + ".-")


def _plain_url(value: str) -> bool:
    """Whether ``value`` is ``http[s]://host[:port][/...]`` with a host of letters, digits, dots
    and dashes and a port of digits from 0 to 65535: a URL urlsplit accepts, told without it."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    end = min((index for index in map(rest.find, "/?#") if index != -1), default=len(rest))
    host, colon, port = rest[:end].partition(":")
    if not host or not _HOST_CHARACTERS.issuperset(host):
        return False
    return not colon or (0 < len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535)


def endpoint(raw: str) -> str:
    value = raw.strip()
    if any(char.isspace() for char in value):  # urlsplit would drop tabs and newlines silently
        raise SettingValueError("an http:// or https:// URL without spaces, e.g. http://localhost:4317")
    if _plain_url(value):
        return value  # urllib.parse (with re and ipaddress) costs every launch ~35M instructions
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingValueError("an http:// or https:// URL, e.g. http://localhost:4317")
    return value


# Propagator names accepted in OTEL_PROPAGATORS, and the module each needs (None: in the API).
PROPAGATOR_MODULES: dict[str, str | None] = {
    "tracecontext": None,
    "baggage": None,
    "b3": "opentelemetry.propagators.b3",
    "b3multi": "opentelemetry.propagators.b3",
    "jaeger": "opentelemetry.propagators.jaeger",
}
_PROPAGATOR_PACKAGES = {"jaeger": "otel-launch[jaeger]"}


def propagators(raw: str) -> tuple[str, ...]:
    names = choice_list(*PROPAGATOR_MODULES)(raw)
    for name in names:
        module = PROPAGATOR_MODULES[name]
        if module is None:
            continue
        import importlib.util  # only for a propagator in a package of its own: it costs start-up time

        if importlib.util.find_spec(module) is None:
            package = _PROPAGATOR_PACKAGES.get(name, module.replace(".", "-"))
            raise SettingValueError(f"propagators that are installed ({name} needs: pip install '{package}')")
    return names


def names(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))


# --- rendering values back to the text of their variable --------------------------------------


def render_list(value: tuple[str, ...]) -> str:
    return ",".join(value) if value else "none"


def render_pairs(value: dict[str, str]) -> str:
    return ",".join(f"{key}={_quoted(val)}" for key, val in value.items())


# What percent-encoding leaves as it is (RFC 3986's unreserved characters).
_UNRESERVED = frozenset(LETTERS + DIGITS + "_.-~")


def _quoted(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``, without importing urllib.parse."""
    if _UNRESERVED.issuperset(text):
        return text
    return "".join(char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode()) for char in text)


def render_number(value: float) -> str:
    return f"{value:g}"


# --- masking secrets -----------------------------------------------------------------------------


def has_userinfo(url: str) -> bool:
    """Whether a URL carries a user or password before its host: as urlsplit reads it, or as
    the masker does (a password holding a ``/``, which urlsplit takes for the path's start)."""
    if "@" not in url:
        return False  # neither rule below can find one: urllib.parse is not imported
    from urllib.parse import urlsplit

    url = url.strip()
    try:
        if "@" in urlsplit(url).netloc:
            return True
    except ValueError:
        return False
    return mask_userinfo(url) != url


ECHO_LIMIT = 80


def echo(shown: str) -> str:
    """How an error repeats a value (already masked): quoted, escaped, at most 80 characters."""
    if len(shown) > ECHO_LIMIT:
        return repr(shown[:ECHO_LIMIT]) + f"... ({len(shown)} characters)"
    return repr(shown)


def mask_pairs(raw: str) -> str:
    # Keep header names (they help to debug), never values. An item with no '='
    # may be a pasted token, so it is hidden whole.
    masked = []
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, _ = item.partition("=")
        masked.append(f"{name.strip()}={MASK}" if sep else MASK)
    return ",".join(masked) or MASK


# --- the privacy setting --------------------------------------------------------------------------

# The value that stands for the built-in pattern of secret-looking names.
REDACT_DEFAULT = "default"


def redact(raw: str) -> str:
    """``default``, ``none`` (keep every value) or a regular expression; the pattern to apply."""
    value = raw.strip()
    if value.lower() == REDACT_DEFAULT:
        return REDACT_PATTERN
    if value.lower() == "none":
        return ""
    import re  # only for a pattern of the user's own

    try:
        re.compile(value, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError):
        raise SettingValueError("default, none, or a regular expression (Python syntax)") from None
    return value
