"""Property: whatever text is in any setting or pass-through variable, Config and child_env either
resolve or raise the one-line ConfigError; never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_launch._core.settings import CHECKED_VARIABLES, SETTINGS
from otel_launch._launcher.config import Config, ConfigError

# Plus one no check knows: passed through as is, shown by --print-config.
VARIABLES = [setting.env for setting in SETTINGS] + [check.env for check in CHECKED_VARIABLES] + ["OTEL_UNCHECKED"]

# Arbitrary text, plus the shapes that broke things: surrogate escapes from the OS, control
# characters, percent escapes, URLs with userinfo, numbers at the edges, huge values.
tricky = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1),
    st.text(alphabet=st.sampled_from("\x00\x01\n\r\t\x7f %ZZ%0A%C3%A9=,:@/?#"), min_size=1),
    st.sampled_from(["1e-320", "nan", "inf", "-0", "0", "64", "9" * 5000, "http://u:p@h:1", "u:p@h:1", "*"]),
    st.builds(lambda unit, n: unit * n, st.sampled_from(["a", "é", "%", "\udcff"]), st.integers(5000, 20000)),
)


def _check(config_kwargs: dict) -> None:
    try:
        config = Config(env_file=None, **config_kwargs)
        env = config.child_env()
        rows = config.rows()
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert len(message) < 800
        return
    assert isinstance(env, dict)
    for row in rows:  # what --print-config prints: one line each, printable in any locale
        text = "  ".join(row)
        text.encode("utf-8")
        assert "\n" not in text
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in env.items())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(VARIABLES), tricky, max_size=6))
def test_any_text_in_the_environment_resolves_or_is_refused_in_one_line(environ):
    _check({"environ": environ})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([setting.name for setting in SETTINGS]), tricky, max_size=4))
def test_any_text_in_the_flags_resolves_or_is_refused_in_one_line(flags):
    _check({"environ": {}, **flags})


@pytest.mark.parametrize("name", [setting.name for setting in SETTINGS])
def test_surrogates_in_every_setting_are_refused_in_one_line(name):
    with pytest.raises(ConfigError, match="valid UTF-8"):
        Config(environ={}, env_file=None, **{name: "a\udcffb"})
