"""The real otel-launch against small real targets, with the package's OTLP receiver listening."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, closed_port, kill_group, launcher, otel_env, run, start

pytestmark = pytest.mark.process


def span_names(receiver) -> list[str]:
    return sorted(span.name for span in receiver.spans)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_span_created_in_target_arrives(receiver, workdir, protocol):
    settings = [
        "--service-version",
        "1.2.3",
        "--deployment-environment",
        "staging",
        "--resource-attributes",
        "team=web",
    ]
    args = [*launcher(), *settings, PYTHON, str(TARGETS / "span_and_exit.py"), "hello"]
    result = run(args, otel_env(receiver, protocol), workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: len(r.spans) >= 1, timeout=10)
    (span,) = receiver.spans
    assert span.name == "hello"
    assert span.service == "target"
    assert span.transport == ("grpc" if protocol == "grpc" else "http")
    assert span.attributes["target.pid"] == int(result.stdout.split()[0])
    assert span.resource["service.instance.id"]
    resource = span.resource
    assert (resource["service.version"], resource["deployment.environment.name"]) == ("1.2.3", "staging")
    assert resource["team"] == "web" and resource["host.name"]
    assert resource["process.pid"] == span.attributes["target.pid"]
    assert "process.command_args" not in span.resource  # may hold secrets: never collected


def test_pid_is_preserved_and_exit_status_passed_through(receiver, workdir):
    proc = start([*launcher(), PYTHON, str(TARGETS / "span_and_exit.py"), "pid", "3"], otel_env(receiver), workdir)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 3, err
    assert int(out.split()[0]) == proc.pid  # exec: the launcher became the target


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_handled_by_target_ends_it_and_spans_are_flushed(receiver, workdir, signum):
    proc = start([*launcher(), PYTHON, str(TARGETS / "sigterm_handler.py")], otel_env(receiver), workdir)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signum)  # to the launcher's PID, which is the target's
        out, err = proc.communicate(timeout=30)
    finally:
        kill_group(proc)
    if signum == signal.SIGTERM:
        assert "handled SIGTERM" in out  # the target's own handler ran
        assert proc.returncode == 0, err
    else:
        assert "KeyboardInterrupt" in err  # Python's default SIGINT handling, untouched
    assert receiver.wait_for(lambda r: "before-signal" in span_names(r), timeout=10)


def test_users_own_sitecustomize_still_runs(receiver, workdir):
    user_dir = workdir / "user_site"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = 'yes'\n")
    code = (
        "import os, sitecustomize; from opentelemetry import trace\n"
        "with trace.get_tracer('t').start_as_current_span('with-user-site'): pass\n"
        "print(os.environ.get('USER_SITECUSTOMIZE_RAN'), sitecustomize.__file__)\n"
    )
    env = otel_env(receiver, PYTHONPATH=str(user_dir))
    result = run([*launcher(), PYTHON, "-c", code], env, workdir)
    assert result.returncode == 0, result.stderr
    ran, module_file = result.stdout.split()
    assert ran == "yes"
    assert Path(module_file).parent == user_dir
    assert receiver.wait_for(lambda r: "with-user-site" in span_names(r), timeout=10)


@pytest.mark.parametrize("method", ["os.fork", "fork", "forkserver", "spawn"])
def test_child_processes_are_instrumented_with_their_own_instance_id(receiver, workdir, method):
    env = otel_env(receiver, OTEL_METRICS_EXPORTER="otlp")
    result = run([*launcher(), PYTHON, str(TARGETS / "fork_children.py"), method], env, workdir)
    assert result.returncode == 0, result.stderr
    child_name = f"child-{method}"
    assert receiver.wait_for(
        lambda r: {"parent-before", "parent-after", child_name} <= set(span_names(r)), timeout=15
    ), span_names(receiver)
    by_name = {span.name: span for span in receiver.spans}
    parent, child = by_name["parent-before"], by_name[child_name]
    assert child.attributes["child.pid"] != parent.resource["process.pid"]
    assert child.resource["process.pid"] == child.attributes["child.pid"]
    assert child.resource["service.instance.id"] != parent.resource["service.instance.id"]
    assert by_name["parent-after"].resource["service.instance.id"] == parent.resource["service.instance.id"]
    # The child's last metrics interval is exported too, under the child's own identity.
    assert receiver.wait_for(lambda r: any(p.metric == "child.work" for p in r.points), timeout=10)
    (point,) = [p for p in receiver.points if p.metric == "child.work"]
    assert point.value == 1 and point.attributes == {"start_method": child_name}
    assert point.resource["service.instance.id"] == child.resource["service.instance.id"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_dead_collector_never_holds_the_exit_past_the_shutdown_timeout(workdir, protocol):
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_TIMEOUT="30",  # unbounded, the exporter would retry for 30 s
        OTEL_LAUNCH_SHUTDOWN_TIMEOUT="1",
    )
    began = time.monotonic()
    result = run([*launcher(), PYTHON, str(TARGETS / "span_and_exit.py"), "lost"], env, workdir, timeout=40)
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert elapsed < 1 + 4, f"exit took {elapsed:.1f}s with a 1 s shutdown timeout"
    assert len(result.stderr.splitlines()) <= 6, result.stderr  # warnings are few, not a flood


def test_no_instrumentation_is_imported_when_no_instrumented_library_is(workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "loaded_modules.py")], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "otel_launch._runtime" in loaded  # the bootstrap did run
    assert [name for name in loaded if name.startswith("opentelemetry")] == []


# As deployed: a collector's URL, its credentials, the service's name, version and team.
CONFIGURED = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com:4317",
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc123,x-team=web",
    "OTEL_SERVICE_NAME": "shop-web",
    "OTEL_LAUNCH_SERVICE_VERSION": "1.2.3",
    "OTEL_RESOURCE_ATTRIBUTES": "team=web,region=eu%20west",
}


@pytest.mark.parametrize(
    "command", ["python -c", "python manage.py", "python -c, configured", "sh: python manage.py", "sh: python -c"]
)
def test_start_up_imports_nothing_that_a_process_making_no_telemetry_does_not_need(workdir, command):
    """Every process start pays for what the launcher imports before its exec and what the
    bootstrap imports in the command: typing (~16M instructions), urllib.parse with ipaddress
    (~15M), re with enum (~25M), collections (~7M), importlib in the launcher, importlib with
    warnings in the command, none of them needed to launch a process that makes no telemetry.
    ``manage.py``: a command the launcher reads a service name from (its settings module, in the
    script); configured: the values a deployment sets, each checked (and some rendered again);
    ``sh:`` under a shell, where the process reads its own name, or says in one line it has none."""
    shown = "import os, sys; print(os.environ.get('OTEL_SERVICE_NAME')); print(' '.join(sorted(sys.modules)))"
    if command.endswith("python manage.py"):
        script = workdir / "manage.py"
        script.write_text(f"import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n{shown}\n")
        target = [PYTHON, str(script), "check"]
    else:
        target = [PYTHON, "-c", shown]
    if command.startswith("sh:"):
        target = ["sh", "-c", shlex.join(target)]
    # The console script as pip (25 and later) and uv write it: "python -m" would import
    # importlib.util and collections itself (runpy), pip's older script re. -X importtime is the
    # launcher's own flag: the command it execs runs without it.
    script = "import sys; from otel_launch._launcher.cli import main; sys.exit(main())"
    env = clean_env(**(CONFIGURED if command.endswith("configured") else {}))
    result = run([PYTHON, "-X", "importtime", "-c", script, *target], env, workdir)
    assert result.returncode == 0, result.stderr
    launcher_imports = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "otel_launch._launcher.cli" in launcher_imports
    unneeded = {"typing", "urllib.parse", "ipaddress", "dataclasses", "re", "enum", "collections", "importlib"}
    assert launcher_imports & unneeded == set()
    service_name, _, modules = result.stdout.partition("\n")
    expected = {
        "python manage.py": "shop-manage",
        "python -c, configured": "shop-web",
        "sh: python manage.py": "shop-manage",
    }
    assert service_name == expected.get(command, "None")
    assert ("no service name for this process" in result.stderr) is (command == "sh: python -c")
    command_modules = set(modules.split())
    assert "otel_launch._runtime" in command_modules  # the bootstrap did run
    assert command_modules & {"typing", "urllib.parse", "importlib", "warnings"} == set()


def test_instrumentation_loads_when_the_app_imports_the_library(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "sqlite_in_span.py")], otel_env(receiver), workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: len(r.spans) >= 4, timeout=10), span_names(receiver)
    handler = next(span for span in receiver.spans if span.name == "handler")
    sql = [span for span in receiver.spans if span.scope.startswith("opentelemetry.instrumentation.sqlite3")]
    assert len(sql) == 3
    assert all(span.parent_span_id == handler.span_id for span in sql)
    insert = next(span for span in sql if "INSERT" in span.attributes.get("db.statement", ""))
    assert "42" not in json.dumps(insert.attributes)  # parameter values never recorded


@pytest.mark.parametrize("disabled", ["sqlite3", "*"])
def test_disabled_instrumentation_is_not_loaded(receiver, workdir, disabled):
    env = otel_env(receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    result = run([*launcher(), PYTHON, str(TARGETS / "sqlite_in_span.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # "*" is known: every instrumentation, ours included
    assert receiver.wait_for(lambda r: "handler" in span_names(r), timeout=10)
    assert span_names(receiver) == ["handler"]


_EXIT_PATHS = """
import django.utils.autoreload as autoreload, uvicorn.server as server
print(autoreload.restart_with_reloader.__name__, server.Server.capture_signals.__name__)
"""


@pytest.mark.parametrize("disabled", ["", "django,uvicorn"])
def test_the_servers_exit_flush_steps_run_as_integrations_and_are_disabled_by_name(receiver, workdir, disabled):
    """runserver's reloader and uvicorn's signal exit get their flush from integration steps,
    which the disabled list turns off by the server's name (the server then runs as it is)."""
    pytest.importorskip("django")
    pytest.importorskip("uvicorn")
    env = otel_env(receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    result = run([*launcher(), PYTHON, "-c", _EXIT_PATHS], env, workdir)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    patched = "restart_with_reloader_letting_the_child_flush flushing_capture_signals"
    assert result.stdout.split() == (["restart_with_reloader", "capture_signals"] if disabled else patched.split())


def test_app_with_its_own_tracer_provider_keeps_it(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "own_provider.py")], otel_env(receiver), workdir)
    assert result.returncode == 0, result.stderr
    module, exported = result.stdout.split()
    assert module == "opentelemetry.sdk.trace" and exported == "1"
    assert receiver.spans == []  # nothing duplicated to our exporter


def test_interpreter_without_otel_launch_runs_uninstrumented_with_one_warning(workdir):
    if sys.prefix == sys.base_prefix:
        pytest.skip("tests are not running in a virtual environment")
    base = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")
    probe = run([base, "-c", "import otel_launch"], clean_env(), workdir)
    if probe.returncode == 0:
        pytest.skip("the base interpreter has otel_launch installed")
    result = run([*launcher(), base, "-c", "print('app ran')"], clean_env(), workdir)
    assert result.returncode == 0
    assert result.stdout == "app ran\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("otel-launch: warning: telemetry is off"), result.stderr


def test_bad_config_is_refused_before_the_target_starts(workdir):
    marker = workdir / "started"
    code = f"open({str(marker)!r}, 'w').close()"
    result = run([*launcher(), "--sample-rate", "1.5", PYTHON, "-c", code], clean_env(), workdir)
    assert result.returncode == 2
    assert result.stderr == "otel-launch: error: --sample-rate: '1.5' is not accepted; expected a number from 0 to 1\n"
    assert not marker.exists()


def test_command_not_found_and_not_executable_exit_like_a_shell(workdir):
    missing = run([*launcher(), "no-such-command-xyz"], clean_env(), workdir)
    assert missing.returncode == 127
    assert missing.stderr == "otel-launch: error: no-such-command-xyz: command not found\n"
    script = workdir / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    not_executable = run([*launcher(), str(script)], clean_env(), workdir)
    assert not_executable.returncode == 126
    assert "not an executable file" in not_executable.stderr


def test_reserved_word_runs_the_program_after_double_dash(workdir):
    result = run([*launcher(), "--", "tail", "--version"], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    assert "tail" in result.stdout.splitlines()[0]


def test_print_config_masks_secrets_and_exits_0(workdir):
    (workdir / ".env").write_text("OTEL_SERVICE_NAME=from-file\nOTEL_EXPORTER_OTLP_TRACES_HEADERS=x-token=filesecret\n")
    env = clean_env(
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20topsecret",
        OTEL_EXPORTER_OTLP_ENDPOINT="https://user:hunter2@collector.example:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",  # over gRPC a password in the URL is refused
    )
    result = run([*launcher(), "--print-config", "--service-version", "1.2"], env, workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in ("topsecret", "hunter2", "filesecret"):
        assert secret not in out
    assert "authorization=***" in out and "https://user:***@collector.example:4317" in out
    assert "from-file" in out and "env file .env" in out
    assert "1.2" in out and "--service-version" in out


def test_logs_are_exported_only_when_asked_for(receiver, workdir):
    script = [PYTHON, str(TARGETS / "log_records.py")]
    off = run([*launcher(), *script], otel_env(receiver), workdir)
    assert off.returncode == 0, off.stderr
    assert receiver.wait_for(lambda r: "with-log" in span_names(r), timeout=10)
    assert receiver.logs == []
    on = run([*launcher(), "--logs-exporter", "otlp", *script], otel_env(receiver), workdir)
    assert on.returncode == 0, on.stderr
    assert "Traceback" not in on.stderr  # e.g. SDK 1.43's handler flush at exit on Python 3.12+
    assert receiver.wait_for(lambda r: len(r.logs) >= 2, timeout=10)
    by_body = {log.body: log for log in receiver.logs}
    assert set(by_body) == {"outside any span", "inside a span"}
    inside = by_body["inside a span"]
    span = next(s for s in receiver.spans if s.name == "with-log" and s.trace_id == inside.trace_id)
    assert inside.span_id == span.span_id


def test_log_records_carry_the_current_trace_ids(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "log_correlation.py")], otel_env(receiver), workdir)
    assert result.returncode == 0, result.stderr
    outside, inside, own = json.loads(result.stdout)
    assert receiver.wait_for(lambda r: "logging-span" in span_names(r), timeout=10)
    span = next(s for s in receiver.spans if s.name == "logging-span")
    assert (outside["trace_id"], outside["span_id"]) == ("0", "0")  # format strings never fail
    assert (inside["trace_id"], inside["span_id"]) == (span.trace_id, span.span_id)
    assert inside["otelTraceID"] == span.trace_id  # upstream's name, for format strings written for it
    assert own["trace_id"] == "the app's own"  # an app's extra wins, and logging does not refuse it
    assert own["span_id"] == span.span_id
    assert "Logging error" not in result.stderr


def test_upstream_log_correlation_variable_sets_the_log_format(receiver, workdir):
    env = otel_env(receiver, OTEL_PYTHON_LOG_CORRELATION="true")
    result = run([*launcher(), PYTHON, str(TARGETS / "log_correlation.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: "logging-span" in span_names(r), timeout=10)
    span = next(s for s in receiver.spans if s.name == "logging-span")
    assert f"[trace_id={span.trace_id} span_id={span.span_id} resource.service.name=" in result.stderr
