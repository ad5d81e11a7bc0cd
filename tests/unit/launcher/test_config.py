"""Precedence, env files, cross-setting rules, child environment and error messages of Config."""

from __future__ import annotations

import contextlib
import os

import pytest

from otel_launch._launcher.config import BOOTSTRAP_DIR, Config, ConfigError


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults():
    config = Config(environ={})
    assert config.traces_exporter == ("otlp",)
    assert config.logs_exporter == ()
    assert config.protocol == "grpc"
    assert config.values["protocol"].source == "default"
    assert config.service_name is None


def test_flag_beats_environment_beats_env_file_beats_default(tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text("OTEL_SERVICE_NAME=file\nOTEL_TRACES_SAMPLER=always_off\nOTEL_EXPORTER_OTLP_PROTOCOL=grpc\n")
    config = Config(
        environ={"OTEL_SERVICE_NAME": "env", "OTEL_TRACES_SAMPLER": "always_on"},
        env_file=str(env_file),
        service_name="flag",
    )
    assert (config.service_name, config.values["service_name"].source) == ("flag", "flag")
    assert (config.sampler, config.values["sampler"].source) == ("always_on", "env")
    assert (config.protocol, config.values["protocol"].source) == ("grpc", "env file")
    assert config.values["metrics_exporter"].source == "default"


def test_dotenv_in_working_directory_is_read_unless_disabled(in_empty_dir):
    (in_empty_dir / ".env").write_text("OTEL_SERVICE_NAME=dotenv\n")
    assert Config(environ={}).service_name == "dotenv"
    assert Config(environ={}, env_file=None).service_name is None


def test_env_file_takes_only_otel_variables_and_never_overrides(in_empty_dir):
    (in_empty_dir / ".env").write_text(
        "SECRET_KEY=app-secret\nDEBUG=1\nOTEL_BSP_SCHEDULE_DELAY=200\nOTEL_METRIC_EXPORT_INTERVAL=1000\n"
    )
    config = Config(environ={"OTEL_METRIC_EXPORT_INTERVAL": "5000", "PATH": "/bin"})
    env = config.child_env()
    assert "SECRET_KEY" not in env and "DEBUG" not in env
    assert env["OTEL_BSP_SCHEDULE_DELAY"] == "200"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "5000"


def test_empty_variable_counts_as_unset():
    config = Config(environ={"OTEL_TRACES_SAMPLER": "", "OTEL_SERVICE_NAME": " "})
    assert config.sampler == "parentbased_always_on"
    assert config.service_name is None


def test_child_env_sets_standard_variables_and_bootstrap_first():
    config = Config(
        environ={"PYTHONPATH": f"/app{os.pathsep}{BOOTSTRAP_DIR}", "OTEL_TRACES_SAMPLER": "always_on"},
        service_name="shop",
        service_version="1.4.2",
        deployment_environment="prod",
        resource_attributes="team=web",
    )
    env = config.child_env()
    assert env["PYTHONPATH"] == f"{BOOTSTRAP_DIR}{os.pathsep}/app"
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_TRACES_SAMPLER"] == "always_on"  # from the environment, left exactly as given
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"  # defaults are written for the SDK to read
    attributes = dict(item.split("=", 1) for item in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes == {
        "team": "web",
        "service.version": "1.4.2",
        "deployment.environment.name": "prod",
        "deployment.environment": "prod",
    }


def test_sample_rate_flag_alone_selects_ratio_sampler():
    config = Config(environ={}, sample_rate="0.1")
    assert config.sampler == "parentbased_traceidratio"
    assert config.values["sampler"].source == "derived"
    assert config.child_env()["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"


def test_sample_rate_variable_keeps_its_standard_meaning_with_a_warning():
    config = Config(environ={"OTEL_TRACES_SAMPLER_ARG": "0.1"})
    assert config.sampler == "parentbased_always_on"
    assert len(config.warnings) == 1 and "has no effect" in config.warnings[0]


def test_unknown_disabled_instrumentation_warns_not_fails():
    config = Config(environ={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask,redis"})
    assert config.disabled_instrumentations == ("flask", "redis")
    assert "flask" in config.warnings[0]


def test_programmatic_values_may_be_typed():
    config = Config(environ={}, sample_rate=0.5, traces_exporter=("console",), headers={"k": "a b"})
    assert config.sample_rate == 0.5
    assert config.traces_exporter == ("console",)
    assert config.headers == {"k": "a b"}


def test_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError, match="unknown setting"):
        Config(environ={}, sample_ratio=0.5)


# Every bad input: one line naming the flag or variable, the value, and what is accepted.
@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"sample_rate": "1.5"}, {}, "--sample-rate: '1.5' is not accepted; expected a number from 0 to 1"),
        ({}, {"OTEL_TRACES_SAMPLER_ARG": "x"}, "OTEL_TRACES_SAMPLER_ARG: 'x' is not accepted; expected a number"),
        ({"sampler": "often"}, {}, "--sampler: 'often' is not accepted; expected one of parentbased_always_on"),
        ({}, {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: 'zipkin' is not accepted; expected"),
        ({"metrics_exporter": "prom"}, {}, "--metrics-exporter: 'prom' is not accepted"),
        ({"protocol": "http/json"}, {}, "--protocol: 'http/json' is not accepted; expected one of grpc, http/protobuf"),
        ({}, {"OTEL_PROPAGATORS": "tracecontext,xray"}, "OTEL_PROPAGATORS: 'tracecontext,xray' is not accepted"),
        ({"endpoint": "collector:4317"}, {}, "--endpoint: 'collector:4317' is not accepted; expected an http://"),
        ({"resource_attributes": "team"}, {}, "--resource-attributes: 'team' is not accepted; expected comma"),
        ({}, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, "OTEL_EXPORTER_OTLP_HEADERS: '***' is not accepted"),
    ],
)
def test_bad_input_message(flags, environ, message):
    with pytest.raises(ConfigError) as raised:
        Config(environ=environ, **flags)
    text = str(raised.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_error_from_env_file_names_variable_and_file(in_empty_dir):
    (in_empty_dir / ".env").write_text("OTEL_TRACES_SAMPLER=sometimes\n")
    with pytest.raises(ConfigError, match=r"^OTEL_TRACES_SAMPLER \(in \.env\): 'sometimes' is not accepted"):
        Config(environ={})


def test_secrets_never_appear_in_errors():
    with pytest.raises(ConfigError) as raised:
        Config(environ={}, headers="authorization=Bearer%20topsecret,stray-token")
    assert "topsecret" not in str(raised.value) and "stray-token" not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        Config(environ={}, endpoint="ftp://user:hunter2@collector")
    assert "hunter2" not in str(raised.value)


def test_unreadable_env_file_is_refused(in_empty_dir):
    with pytest.raises(ConfigError, match=r"^--env-file: '.*missing.env' cannot be read \(No such file"):
        Config(environ={}, env_file=str(in_empty_dir / "missing.env"))
    directory = in_empty_dir / "adir"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        Config(environ={}, env_file=str(directory))


def test_a_default_env_that_is_not_a_regular_file_is_skipped(in_empty_dir):
    """A repository's .env/ folder of samples, a link to /dev/null, a dangling link: as if there were
    no .env; only an explicitly named one that cannot be read is an error."""
    (in_empty_dir / ".env").mkdir()
    (in_empty_dir / ".env" / "production").write_text("OTEL_SERVICE_NAME=sample\n")
    config = Config(environ={})
    assert (config.env_file, config.service_name, config.warnings) == (None, None, [])
    with pytest.raises(ConfigError, match=r"^--env-file: '\.env' cannot be read \(Is a directory\)"):
        Config(environ={}, env_file=".env")
    (in_empty_dir / ".env").rename(in_empty_dir / "samples")
    for target in ("/dev/null", str(in_empty_dir / "gone")):
        (in_empty_dir / ".env").symlink_to(target)
        config = Config(environ={})
        assert (config.env_file, config.warnings) == (None, [])
        (in_empty_dir / ".env").unlink()
    (in_empty_dir / ".env").symlink_to(in_empty_dir / "samples" / "production")  # a link to a file: read
    assert Config(environ={}).service_name == "sample"


def test_a_default_env_without_read_permission_is_noted_and_skipped(monkeypatch):
    """A .env nobody named that this user may not read (a deploy user's, root's): one warning line and
    the launch goes on; the same file named with --env-file is an error. As root, the check runs
    with another effective user (root reads a file whatever its mode)."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="otel-launch-env-")
    try:
        os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide the file itself from another user
        monkeypatch.chdir(folder)
        with open(".env", "w") as handle:
            handle.write("OTEL_SERVICE_NAME=fromfile\n")
        os.chmod(".env", 0)
        with _another_user_if_root():
            config = Config(environ={})
            with pytest.raises(ConfigError, match=r"^--env-file: '\.env' cannot be read \(Permission denied\)"):
                Config(environ={}, env_file=".env")
    finally:
        os.chmod(os.path.join(folder, ".env"), 0o600)
        os.unlink(os.path.join(folder, ".env"))
        os.rmdir(folder)
    assert (config.env_file, config.service_name) == (None, None)
    assert config.warnings == [
        ".env cannot be read (Permission denied): not read (--env-file .env requires it; --no-env-file: no note)"
    ]


@contextlib.contextmanager
def _another_user_if_root():
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)  # nobody
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_default_env_that_is_a_named_pipe_is_noted_and_never_opened(in_empty_dir):
    """Opening a pipe nobody writes to would block the launch for good; reading one a secrets manager
    serves would take its content from the app. Bounded: the check runs in a thread joined with a timeout."""
    import threading

    os.mkfifo(in_empty_dir / ".env")
    found: list[Config] = []
    check = threading.Thread(target=lambda: found.append(Config(environ={})), daemon=True)
    check.start()
    check.join(10)
    if check.is_alive():  # release the blocked open() so that the thread ends
        with open(in_empty_dir / ".env", "w"):
            pass
        pytest.fail("the launcher opened the named pipe .env")
    (config,) = found
    assert config.env_file is None
    assert config.warnings == [".env is a named pipe: not read (--env-file .env reads it; --no-env-file: no note)"]


def test_a_default_env_file_that_cannot_be_read_is_refused_with_the_way_out(in_empty_dir):
    (in_empty_dir / ".env").write_bytes(b"OTEL_SERVICE_NAME=\xff\n")
    with pytest.raises(ConfigError, match=r"^\.env: '\.env' cannot be read \(UnicodeDecodeError\).*--no-env-file"):
        Config(environ={})


def test_rows_mask_secrets_and_name_sources(in_empty_dir):
    (in_empty_dir / ".env").write_text("OTEL_EXPORTER_OTLP_METRICS_HEADERS=x-key=filesecret\n")
    config = Config(
        environ={"OTEL_EXPORTER_OTLP_HEADERS": "authorization=topsecret", "OTEL_BSP_MAX_QUEUE_SIZE": "4096"},
        endpoint="https://u:pw@collector:4317",
        protocol="http/protobuf",
    )
    rows = {row[1]: row for row in config.rows()}
    assert rows["OTEL_EXPORTER_OTLP_HEADERS"][2:] == ("authorization=***", "env")
    assert rows["OTEL_EXPORTER_OTLP_ENDPOINT"][2:] == ("https://u:***@collector:4317", "flag")
    assert rows["OTEL_EXPORTER_OTLP_METRICS_HEADERS"][2:] == ("x-key=***", "env file .env")
    assert rows["OTEL_BSP_MAX_QUEUE_SIZE"][2:] == ("4096", "env (passed through)")
    assert "secret" not in repr(config.rows()) and ":pw@" not in repr(config.rows())


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        (
            {"endpoint": "http://u:pw@c:4317"},
            {},
            "--endpoint: 'http://u:***@c:4317' is not accepted with protocol grpc",
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://t@c:4317"},
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://***@c",
        ),
        ({"headers": "a=x%0Ay"}, {}, "--headers: 'a=***' is not accepted"),
        ({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "64"}, "OTEL_BSP_MAX_QUEUE_SIZE: '64' is not accepted; expected at least"),
        (
            {},
            {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"},
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '200' is not accepted; expected at most OTEL_BSP_MAX_QUEUE_SIZE (100)",
        ),
        ({"resource_detectors": "host,bogus"}, {}, "--resource-detectors: 'host,bogus' is not accepted"),
        ({}, {"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED: 'maybe' is not accepted; expected true or false"),
        ({"shutdown_timeout": "1e-320"}, {}, "--shutdown-timeout: '1e-320' is not accepted"),
        ({"service_name": "a\nb"}, {}, "--service-name: 'a\\nb' is not accepted; expected text without control"),
    ],
)
def test_new_refusals(flags, environ, message):
    with pytest.raises(ConfigError) as raised:
        Config(environ=environ, **flags)
    assert str(raised.value).startswith(message)
    assert "pw" not in str(raised.value)


def test_userinfo_is_accepted_over_http_and_masked():
    config = Config(
        environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://u:pw@c:4318/v1/traces"},
        protocol="http/protobuf",
        endpoint="http://u:pw@c:4318",
    )
    rows = {row[1]: row[2] for row in config.rows()}
    assert rows["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://u:***@c:4318"
    assert rows["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://u:***@c:4318/v1/traces"


def test_valid_passthrough_values_pass_and_empty_ones_are_left_out():
    config = Config(
        environ={
            "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
            "OTEL_BSP_SCHEDULE_DELAY": " ",
            "PATH": "/bin",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
            "OTEL_SPAN_LINK_COUNT_LIMIT": "unset",
        },
        resource_detectors="*",
    )
    env = config.child_env()
    assert env["OTEL_BSP_MAX_QUEUE_SIZE"] == "4096" and "OTEL_BSP_SCHEDULE_DELAY" not in env


def test_error_echo_is_capped():
    with pytest.raises(ConfigError) as raised:
        Config(environ={"OTEL_TRACES_SAMPLER": "x" * 10_000})
    assert len(str(raised.value)) < 400 and "(10000 characters)" in str(raised.value)


def test_unparsable_env_file_lines(in_empty_dir):
    (in_empty_dir / ".env").write_text("garbage line\nOTEL_SERVICE_NAME=shop\n")
    config = Config(environ={})
    assert config.service_name == "shop"
    assert config.warnings == [".env line 1: cannot be parsed, ignored (otel-launch reads only its OTEL_* lines)"]
    (in_empty_dir / ".env").write_text("export OTEL_SERVICE_NAME='unclosed\n")
    with pytest.raises(ConfigError, match=r"^\.env line 1: cannot be parsed"):
        Config(environ={})


def test_rows_print_any_unchecked_variable_as_escapes():
    rows = {row[1]: row[2] for row in Config(environ={"OTEL_FOO": "a\udcff\nb"}).rows()}
    assert rows["OTEL_FOO"] == "a\\udcff\\nb"  # one line, printable whatever the locale
