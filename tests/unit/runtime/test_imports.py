"""Post-import hooks (in-process: they cross no process boundary)."""

from __future__ import annotations

import sys

import pytest

from otel_launch._runtime import _imports


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("hooked_")]:
        del sys.modules[name]


def test_hook_runs_after_the_module_executes_and_leaves_the_loader_alone(module_dir):
    (module_dir / "hooked_a.py").write_text("VALUE = 41\n")
    seen = []
    _imports.when_imported("hooked_a", lambda module: seen.append(module.VALUE + 1))
    import hooked_a

    assert seen == [42]
    assert "exec_module" not in vars(hooked_a.__loader__)  # the real loader, unpatched
    assert hooked_a.__loader__.get_source("hooked_a") == "VALUE = 41\n"


def test_hook_for_an_already_imported_module_runs_now(module_dir):
    (module_dir / "hooked_b.py").write_text("")
    import hooked_b

    seen = []
    _imports.when_imported("hooked_b", seen.append)
    assert seen == [hooked_b]


def test_failing_hook_warns_and_the_import_still_succeeds(module_dir, capsys):
    (module_dir / "hooked_c.py").write_text("OK = True\n")

    def broken(module):
        raise RuntimeError("boom")

    _imports.when_imported("hooked_c", broken)
    import hooked_c

    assert hooked_c.OK
    err = capsys.readouterr().err
    assert (
        err == "otel-launch: warning: could not instrument hooked_c, it runs without telemetry (RuntimeError: boom)\n"
    )


def test_failed_import_keeps_the_hook_for_a_later_import(module_dir):
    path = module_dir / "hooked_d.py"
    path.write_text("raise ImportError('not yet')\n")
    seen = []
    _imports.when_imported("hooked_d", seen.append)
    with pytest.raises(ImportError):
        import hooked_d  # noqa: F401
    path.write_text("READY = True\n")
    sys.modules.pop("hooked_d", None)
    import importlib

    importlib.invalidate_caches()
    module = importlib.import_module("hooked_d")
    assert seen == [module]


def test_hook_runs_when_the_module_was_looked_up_before_its_import(module_dir):
    """Django asks ``importlib.util.find_spec`` whether an app has a models module, then imports
    it: the spec of that look-up is never executed, and the hook waits for the import."""
    import importlib.util

    (module_dir / "hooked_e.py").write_text("VALUE = 1\n")
    seen = []
    _imports.when_imported("hooked_e", seen.append)
    assert importlib.util.find_spec("hooked_e") is not None
    assert seen == []
    import hooked_e

    assert seen == [hooked_e]
    assert "exec_module" not in vars(hooked_e.__loader__)
