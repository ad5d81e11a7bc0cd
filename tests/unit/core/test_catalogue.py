"""The entry-point catalogue: its own dist-info reader against importlib.metadata, and activation."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from otel_launch._core import catalogue
from otel_launch._core.catalogue import NEVER_LOADED, Entry, cached_scan, scan
from otel_launch._runtime.integrations import _catalogue
from otel_launch._runtime.integrations._catalogue import activate


def _packages_distributions() -> dict[str, list[str]]:
    """importlib.metadata's, with 3.11's fallback on 3.10: a distribution without top_level.txt
    (urllib3 2, any hatchling wheel) owns the top-level names of the files in its RECORD."""
    found = importlib.metadata.packages_distributions()
    if sys.version_info >= (3, 11):
        return found
    for dist in importlib.metadata.distributions():
        if dist.read_text("top_level.txt") is not None:
            continue
        for file in dist.files or ():
            top = file.parts[0] if len(file.parts) > 1 else file.name.partition(".")[0]
            ours = file.suffix == ".py" or len(file.parts) > 1 and not top.endswith((".dist-info", ".data"))
            if ours and top != "__pycache__" and dist.metadata["Name"] not in found.setdefault(top, []):
                found[top].append(dist.metadata["Name"])
    return found


def test_the_scan_finds_what_importlib_metadata_finds_in_this_environment():
    """Side by side with the standard library on the real environment: same entry points, same
    requirements (as upstream's dependency check extracts them), triggers that are the
    library's own top-level modules."""
    by_name = {entry.name: entry for entry in scan()}
    top_levels = _packages_distributions()
    expected = {}
    for point in importlib.metadata.entry_points(group="opentelemetry_instrumentor"):
        if point.name in NEVER_LOADED:
            continue
        instruments, instruments_any = [], []
        for raw in point.dist.requires or ():
            requirement = Requirement(raw)
            if requirement.marker and requirement.marker.evaluate({"extra": "instruments"}):
                instruments.append(requirement)
            elif requirement.marker and requirement.marker.evaluate({"extra": "instruments-any"}):
                instruments_any.append(requirement)
        expected[point.name] = (point.value, instruments, instruments_any)
    assert {"requests", "urllib", "urllib3", "httpx", "jinja2"} <= set(expected)
    for name, (value, instruments, instruments_any) in expected.items():
        candidates = instruments[:1] or instruments_any
        # An entry point named after one of its any-of libraries is for that one (httpx2).
        candidates = [r for r in candidates if _normalize(r.name) == _normalize(name)] or candidates
        installed = [r for r in candidates if _installed(r.name)]
        if (instruments or instruments_any) and not installed:
            assert name not in by_name  # its library is not here: nothing to wait for
            continue
        entry = by_name[name]
        assert entry.value == value
        assert [_spec(Requirement(r)) for r in entry.instruments] == [_spec(r) for r in instruments]
        assert [_spec(Requirement(r)) for r in entry.instruments_any] == [_spec(r) for r in instruments_any]
        libraries = {_normalize(r.name) for r in installed}
        for trigger in entry.triggers:
            owners = {_normalize(d) for d in top_levels.get(trigger.partition(".")[0], [])}
            assert owners & libraries or not installed, (name, trigger, owners)
    assert by_name["urllib"].triggers == ["urllib.request"]
    assert by_name["requests"].triggers == ["requests"] and by_name["jinja2"].triggers == ["jinja2"]
    assert by_name["httpx"].triggers == ["httpx"]
    assert "httpx2" not in by_name  # same package, for a library (httpx2) not installed


def _spec(requirement: Requirement) -> tuple:
    return requirement.name, requirement.specifier, sorted(requirement.extras)


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _dist(site: Path, name: str, version: str, **files: str) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    files.setdefault("METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    for file, text in files.items():
        (folder / file).write_text(text)


def _instrumentor(site: Path, name: str, points: str, *requires: str) -> None:
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    metadata += "\nRequires-Dist: not-a-header; extra == 'instruments'\n"  # the description: ignored
    _dist(site, name, "0.1", METADATA=metadata, **{"entry_points.txt": f"[opentelemetry_instrumentor]\n{points}\n"})


def test_triggers_come_from_the_librarys_files(tmp_path: Path):
    site = tmp_path / "site"
    _instrumentor(site, "inst_a", "fancy = inst_a:FancyInstrumentor", "Fancy-Lib (>=1.0); extra == 'instruments'")
    # No top_level.txt: the importable names come from RECORD.
    record = (
        "fancy_core/__init__.py,,\nfancy_speedups.cpython-311-x86_64-linux-gnu.so,,\nfancy_lib-1.0.dist-info/RECORD,,\n"
    )
    record += "../../bin/fancy,,\nsingle.py,,\n"
    _dist(site, "fancy_lib", "1.0", RECORD=record)
    _instrumentor(site, "inst_b", "asyncio = inst_b:AsyncioInstrumentor\nurllib = inst_b:UrllibInstrumentor")
    _instrumentor(site, "inst_c", "gone = inst_c:GoneInstrumentor", 'gone-lib>=1; extra == "instruments"')
    _instrumentor(site, "inst_d", "django = inst_d:DjangoInstrumentor\nlogging = inst_d:LoggingInstrumentor")
    marker = 'oldlib>=1; python_version < "3" and extra == "instruments"'
    _instrumentor(site, "inst_e", "legacy = inst_e:I", marker, 'fancy-lib>=1; extra == "instruments"')
    found = {entry.name: entry for entry in scan([str(site)])}
    assert found["fancy"].triggers == ["fancy_core", "fancy_speedups", "single"]
    assert found["fancy"].instruments == ["Fancy-Lib>=1.0"]
    assert found["asyncio"].triggers == ["asyncio"] and found["urllib"].triggers == ["urllib.request"]
    assert "gone" not in found  # its library is not installed
    assert "django" not in found and "logging" not in found  # ours
    assert found["legacy"].instruments == ["fancy-lib>=1"]  # the marker false on this interpreter
    assert catalogue.entry_point_names([str(site)]) == {
        "fancy",
        "asyncio",
        "urllib",
        "gone",
        "django",
        "logging",
        "legacy",
    }


def test_the_first_distribution_on_the_path_wins(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    _instrumentor(first, "inst", "fancy = first_module:I", "fancy>=1; extra == 'instruments'")
    _instrumentor(second, "inst", "fancy = second_module:I", "fancy>=1; extra == 'instruments'")
    _dist(second, "fancy", "1.0", **{"top_level.txt": "fancy\n"})
    (entry,) = scan([str(first), str(second), str(tmp_path / "missing")])
    assert entry.value == "first_module:I" and entry.triggers == ["fancy"]


def test_the_hand_off_round_trips_and_is_for_one_interpreter_only(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    entries = scan()
    encoded = catalogue.encode(entries)
    monkeypatch.setattr(catalogue, "_found", None)
    monkeypatch.setenv(catalogue.ENV_VAR, encoded)
    assert [e.encode() for e in catalogue.entries()] == [e.encode() for e in entries]
    # Made by another interpreter: this process scans for itself.
    monkeypatch.setattr(catalogue, "_found", None)
    monkeypatch.setenv(catalogue.ENV_VAR, "3.0:/elsewhere;fake fake:Fake fake")
    assert "fake" not in [e.name for e in catalogue.entries()]
    monkeypatch.setattr(catalogue, "_found", None)
    monkeypatch.setenv(catalogue.ENV_VAR, catalogue.encode([]))
    assert catalogue.entries() == []


def test_the_cached_scan_holds_until_a_folder_with_distributions_changes(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site, cwd = tmp_path / "site", tmp_path / "cwd"
    cwd.mkdir()
    _instrumentor(site, "inst", "fancy = inst:I", "fancy>=1; extra == 'instruments'")
    _dist(site, "fancy", "1.0", **{"top_level.txt": "fancy\n"})
    paths = [str(cwd), str(site)]
    assert [e.name for e in cached_scan(paths)] == ["fancy"]
    scans = []
    monkeypatch.setattr(catalogue, "_scan", lambda dists: scans.append(sorted(dists)) or [])
    (cwd / "new-file").write_text("")  # a folder without distributions changes all the time
    assert [e.encode() for e in cached_scan(paths)] == ["fancy inst:I fancy r:fancy>=1"]
    assert scans == []  # from the cache
    os.utime(site, ns=(0, 0))  # as installing or removing a distribution changes it
    assert cached_scan(paths) == [] and scans == [["fancy", "inst"]]
    assert cached_scan(paths[1:]) == [] and len(scans) == 2  # another path: another scan
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")  # unwritable: scan, no error
    assert cached_scan(paths) == [] and len(scans) == 3


class FakeInstrumentor:
    """Stands in for a BaseInstrumentor: activation's own logic is what is tested here."""

    calls: list[dict] = []
    is_instrumented_by_opentelemetry = False

    def instrument(self, **kwargs):
        FakeInstrumentor.calls.append(kwargs)


@pytest.fixture
def fake():
    FakeInstrumentor.calls = []
    return Entry("fake", f"{__name__}:FakeInstrumentor", ["fake"], [], [])


def test_activation_instruments_once_without_upstreams_second_check(fake):
    assert activate(fake)
    assert FakeInstrumentor.calls == [{"skip_dep_check": True}]


def test_a_version_outside_the_range_is_one_warning_and_no_instrumentation(fake, capsys):
    fake.instruments = [f"pytest<{pytest.__version__}"]
    assert not activate(fake)
    assert FakeInstrumentor.calls == []
    err = capsys.readouterr().err
    assert err == (
        f"otel-launch: warning: fake is not instrumented: its instrumentation supports pytest<{pytest.__version__}, "
        f"installed: pytest {pytest.__version__}\n"
    )


def test_a_library_not_installed_is_skipped_silently(fake, capsys):
    fake.instruments_any = ["no-such-distribution>=1", "nor-this-one"]
    assert not activate(fake)
    assert FakeInstrumentor.calls == [] and capsys.readouterr().err == ""


def test_disabled_names_and_the_wildcard_are_respected(fake, monkeypatch):
    for value in ("other,fake", "*"):
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", value)
        fake.done = False
        _catalogue.CatalogueIntegration(fake, "fake").activate(sys)
    assert FakeInstrumentor.calls == []
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    fake.done = False
    integrations = _catalogue.integrations([Entry("fake", fake.value, ["fake", "fake_too"], [], [])])
    for integration in integrations:  # two triggers, one activation
        integration.activate(sys)
    assert len(FakeInstrumentor.calls) == 1


def test_the_scan_reads_no_module_it_does_not_need():
    """The scan is meant to cost little: it must not import importlib.metadata or packaging."""
    code = (
        "import sys; from otel_launch._core import catalogue; catalogue.scan(); "
        "print(sorted(m for m in ('importlib.metadata', 'packaging', 'email', 'zipfile', 'json') if m in sys.modules))"
    )
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("_OTEL")}
    out = subprocess.run([sys.executable, "-c", code], env=env, text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_catalogue_names_are_known_names_for_the_disabled_list():
    from otel_launch._launcher.config import Config

    known = Config(environ={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "jinja2,requests,starlette"}, env_file=None)
    assert known.warnings == []  # starlette: installed (bench extra), its library is not
    unknown = Config(environ={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "jinja2,no-such-thing"}, env_file=None)
    assert len(unknown.warnings) == 1 and "no-such-thing" in unknown.warnings[0]
    assert "jinja2" not in unknown.warnings[0].partition("(")[0]


class FakeClient:
    def send(self, value):
        return ("sent", value)


def _contrib_wrapper(wrapped, label):
    """A wrapper made in an ``opentelemetry.`` module, as the contrib instrumentations' are."""
    code = "def wrapper(self, value):\n    return (label, wrapped(self, value))\n"
    namespace = {"__name__": "opentelemetry.instrumentation.fake", "wrapped": wrapped, "label": label}
    exec(code, namespace)
    return namespace["wrapper"]


def test_an_http_client_is_instrumented_at_its_first_call_then_the_call_goes_through_it(monkeypatch):
    from otel_launch._runtime.integrations import http

    monkeypatch.setitem(http._ENTRY_METHODS, "fake", [(__name__, "FakeClient.send")])
    monkeypatch.setattr(FakeClient, "send", FakeClient.__dict__["send"])  # restored after the test
    instrumented = []

    def instrument():
        instrumented.append(True)  # upstream wraps what is on the class: the stand-in, still there
        FakeClient.send = _contrib_wrapper(FakeClient.__dict__["send"], "traced")

    http.on_first_call("fake", instrument)
    assert instrumented == []  # nothing at import
    assert FakeClient().send(1) == ("traced", ("sent", 1))
    assert FakeClient().send(2) == ("traced", ("sent", 2)) and instrumented == [True]


def test_a_call_made_while_the_first_call_instruments_waits_and_is_traced(monkeypatch):
    """The stand-in stays in place during the instrumentation: another thread's call never finds
    the original there (it would go untraced; for a database, its connection for its whole life)."""
    import threading

    from otel_launch._runtime.integrations import http

    monkeypatch.setitem(http._ENTRY_METHODS, "fake", [(__name__, "FakeClient.send")])
    monkeypatch.setattr(FakeClient, "send", FakeClient.__dict__["send"])
    instrumenting, release = threading.Event(), threading.Event()

    def instrument():
        instrumenting.set()
        assert release.wait(10)
        FakeClient.send = _contrib_wrapper(FakeClient.__dict__["send"], "traced")

    http.on_first_call("fake", instrument)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=FakeClient().send(1)))
    first.start()
    assert instrumenting.wait(10)
    second = threading.Thread(target=lambda: results.update(second=FakeClient().send(2)))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the instrumentation, not sent untraced
    release.set()
    first.join(10), second.join(10)
    assert results == {"first": ("traced", ("sent", 1)), "second": ("traced", ("sent", 2))}


def test_a_failing_instrumentation_at_the_first_call_never_fails_the_call(monkeypatch, capsys):
    from otel_launch._runtime.integrations import http

    monkeypatch.setitem(http._ENTRY_METHODS, "fake", [(__name__, "FakeClient.send")])
    monkeypatch.setattr(FakeClient, "send", FakeClient.__dict__["send"])

    def instrument():
        raise RuntimeError("broken")

    http.on_first_call("fake", instrument)
    assert FakeClient().send(1) == ("sent", 1)
    assert capsys.readouterr().err == (
        "otel-launch: warning: could not instrument fake, it runs without telemetry (RuntimeError: broken)\n"
    )


def test_a_stand_in_the_app_wrapped_before_the_first_call_passes_to_the_original(monkeypatch):
    """The app ran the client's instrumentor itself after importing it: no loop, one pass."""
    from otel_launch._runtime.integrations import http

    monkeypatch.setitem(http._ENTRY_METHODS, "fake", [(__name__, "FakeClient.send")])
    monkeypatch.setattr(FakeClient, "send", FakeClient.__dict__["send"])
    http.on_first_call("fake", lambda: None)
    FakeClient.send = _contrib_wrapper(FakeClient.__dict__["send"], "app-traced")  # what the app's instrument() does
    assert FakeClient().send(1) == ("app-traced", ("sent", 1))
    assert FakeClient().send(2) == ("app-traced", ("sent", 2))


def test_the_runtimes_steps_are_for_the_registrys_names_in_its_order():
    """One registry of our integration names (the core's OWN): the runtime's steps, the names the
    launcher knows and the doctor's list all come from it, and the catalogue never loads them."""
    from otel_launch._runtime.integrations import STEPS

    assert list(dict.fromkeys(step.name for step in STEPS)) == list(catalogue.OWN)
    assert set(catalogue.OWN) <= catalogue.NEVER_LOADED
    assert catalogue.names()[: len(catalogue.OWN)] == list(catalogue.OWN)
