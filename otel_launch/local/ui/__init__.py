"""``otel-launch ui``: the package's OTLP receiver, a SQLite store and a web page, in one local process.

It keeps traces, metric points and log records, within ``--max-bytes`` and ``--max-age``.

The web page needs the ``ui`` extra (starlette, uvicorn); without it the command says in one
line what to install. Everything binds to 127.0.0.1 and answers only to a loopback ``Host``
unless ``--all-interfaces`` is given: then all three ports listen on every interface, in one
address family (IPv6 ``::`` taking IPv4 too, or IPv4 where there is no IPv6), and the start
line says that anyone who can reach them can read every trace.
"""

from __future__ import annotations

import click

from otel_launch.local.listen import PORT_TYPE, Age, Size, all_interfaces
from otel_launch.local.receiver import MiB

INSTALL_HINT = "the trace viewer needs its extra: pip install 'otel-launch[ui]'"


@click.command(name="ui", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=PORT_TYPE, default=16686, show_default=True, help="Web page port (0: any free port).")
@click.option("--grpc-port", type=PORT_TYPE, default=4317, show_default=True, help="OTLP/gRPC port (0: any free port).")
@click.option("--http-port", type=PORT_TYPE, default=4318, show_default=True, help="OTLP/HTTP port (0: any free port).")
@click.option("--db", default=None, metavar="PATH", help="SQLite file (':memory:' allowed). [default: user cache dir]")
@click.option(
    "--max-traces", type=click.IntRange(1, 1_000_000), default=1000, show_default=True, help="Oldest dropped beyond."
)
@click.option(
    "--max-bytes",
    type=Size(MiB),
    default="256M",
    show_default=True,
    help="Store size (database and its log); the oldest traces are evicted beyond (K, M, G). "
    "Metric points and log records take at most a quarter of it each.",
)
@click.option(
    "--max-age",
    type=Age(1, 366 * 86400),
    default="24h",
    show_default=True,
    help="Traces, metric points and log records received longer ago are dropped (s, m, h, d).",
)
@click.option(
    "--all-interfaces",
    "on_all_interfaces",
    is_flag=True,
    help="Listen on every interface (:: or 0.0.0.0) instead of 127.0.0.1, for any Host name "
    "(no login: anyone who can reach the ports reads every trace).",
)
def ui_command(
    port: int,
    grpc_port: int,
    http_port: int,
    db: str | None,
    max_traces: int,
    max_bytes: int,
    max_age: float,
    on_all_interfaces: bool,
) -> None:
    """Receive OTLP locally and browse traces, metrics and logs in a web page: no collector, no Docker."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise click.ClickException(INSTALL_HINT) from None
    from otel_launch.local.ui.server import serve
    from otel_launch.local.ui.store import default_db_path

    serve(
        host=all_interfaces() if on_all_interfaces else "127.0.0.1",
        port=port,
        grpc_port=grpc_port,
        http_port=http_port,
        db=db if db is not None else str(default_db_path()),
        max_traces=max_traces,
        max_bytes=max_bytes,
        max_age_s=max_age,
        local_only=not on_all_interfaces,
    )
