"""The command line: errors as one line with exit 2, aliases, and the two parsers agreeing."""

from __future__ import annotations

import pytest

from otel_launch import __version__
from otel_launch._launcher.cli import main, parse_plain_launch, parse_with_click


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "otel-launch: error: no command given; usage: otel-launch [OPTIONS] [--] COMMAND [ARGS]...\n"),
        (("--service-name", "x"), "otel-launch: error: no command given"),
        (("--bogus", "python"), "otel-launch: error: No such option"),  # click's wording varies by release
        (("--sample-rate",), "otel-launch: error: Option '--sample-rate' requires an argument."),
        (("--env-file", "a", "--no-env-file", "true"), "otel-launch: error: --env-file and --no-env-file cannot"),
        (("--sampler", "always_on", "tail"), "otel-launch: error: 'tail' is an otel-launch subcommand"),
        (("--traces_exporter", "zipkin", "true"), "otel-launch: error: --traces-exporter: 'zipkin' is not accepted"),
        (("tail", "--grpc-port", "x"), "otel-launch: error: Invalid value for '--grpc-port'"),
    ],
)
def test_bad_command_lines_get_one_line_and_exit_2(capsys, args, message):
    code, out, err = run_main(capsys, *args)
    assert code == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1


def test_version_and_help(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert (code, out) == (0, f"otel-launch {__version__}\n")
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    assert out.index("--service-name") < out.index("--shutdown-timeout") < out.index("--env-file")
    assert "--traces_exporter" in out


def test_print_config_exits_0_without_a_command(capsys):
    code, out, _ = run_main(capsys, "--print-config", "--traces_exporter", "console")
    assert code == 0
    assert any(line.split()[1:3] == ["OTEL_TRACES_EXPORTER", "console"] for line in out.splitlines()[1:])


# The fast parser must read every command line it accepts exactly as click does.
@pytest.mark.parametrize(
    "args",
    [
        ["gunicorn", "proj.wsgi", "-w", "4"],
        ["--service-name", "web", "gunicorn", "proj.wsgi"],
        ["--service-name=web", "--sample-rate", "0.5", "celery", "-A", "proj", "worker"],
        ["--traces_exporter", "console", "--disable", "redis", "python", "manage.py", "migrate"],
        ["--env-file", "x.env", "--", "python", "-c", "pass"],
        ["--no-env-file", "--", "tail", "-f", "log"],
        ["--headers", "a=b,c=d", "--endpoint", "http://h:4317", "python"],
        ["--service-name", "--odd-but-a-value", "python"],
        ["--", "--weird-program-name"],
    ],
)
def test_fast_parser_agrees_with_click(args):
    fast = parse_plain_launch(args)
    assert fast is not None
    assert fast == parse_with_click(args)


@pytest.mark.parametrize(
    "args",
    [[], ["--help"], ["--version"], ["--print-config"], ["-h"], ["--bogus", "x"], ["--sample-rate"], ["tail"]],
)
def test_fast_parser_leaves_everything_else_to_click(args):
    assert parse_plain_launch(args) is None
