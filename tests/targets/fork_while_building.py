"""A parent forks while its span export thread is building the OTLP/gRPC exporter: paused inside
the import of the exporter's module, as a slow import (gRPC, on a loaded machine) is.

The import goes on once the main thread waits in otel-launch's before-fork hook for the build
(a helper thread polls the main thread's stack for it), or, if no hook waits for it, once the
fork is done (the parent's after-fork hook): then the child is forked mid-import. The child
records a span and exits; the parent prints the child's exit status and exits."""

import importlib.abc
import importlib.machinery
import os
import sys
import threading

from opentelemetry import trace

EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
assert EXPORTER_MODULE not in sys.modules  # built at the first export, not before
paused, go = threading.Event(), threading.Event()


class PausedLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if threading.current_thread() is not threading.main_thread():
            paused.set()
            assert go.wait(30), "neither the fork hook nor the fork let the import go on"
        self.loader.exec_module(module)


class PausingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != EXPORTER_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        spec.loader = PausedLoader(spec.loader)
        return spec


def go_on_when_the_fork_waits_for_the_build():
    main = threading.main_thread().ident
    while not go.is_set():
        frame = sys._current_frames().get(main)
        while frame is not None:
            if frame.f_code.co_name == "_let_builds_finish":
                go.set()
                return
            frame = frame.f_back
        go.wait(0.005)  # a poll of the main thread's stack, ended by the fork's own after-hook


sys.meta_path.insert(0, PausingFinder())
os.register_at_fork(after_in_parent=go.set)

with trace.get_tracer("target").start_as_current_span("parent"):
    pass
assert paused.wait(30), "the export thread never imported the exporter"
threading.Thread(target=go_on_when_the_fork_waits_for_the_build, daemon=True).start()
pid = os.fork()
if pid == 0:
    with trace.get_tracer("target").start_as_current_span("child"):
        pass
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child-exit", os.waitstatus_to_exitcode(status), flush=True)
