"""``otel-launch ui``: the package's OTLP receiver, a SQLite store and a web page, in one local process.

The web page needs the ``ui`` extra (starlette, uvicorn); without it the command says in one
line what to install. Everything binds to 127.0.0.1 unless ``--all-interfaces`` is given.
"""

from __future__ import annotations

import click

from otel_launch._tail import PORT

INSTALL_HINT = "the trace viewer needs its extra: pip install 'otel-launch[ui]'"


@click.command(name="ui", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=PORT, default=16686, show_default=True, help="Web page port (0: any free port).")
@click.option("--grpc-port", type=PORT, default=4317, show_default=True, help="OTLP/gRPC port (0: any free port).")
@click.option("--http-port", type=PORT, default=4318, show_default=True, help="OTLP/HTTP port (0: any free port).")
@click.option("--db", default=None, metavar="PATH", help="SQLite file (':memory:' allowed). [default: user cache dir]")
@click.option(
    "--max-traces", type=click.IntRange(1, 1_000_000), default=1000, show_default=True, help="Oldest dropped beyond."
)
@click.option(
    "--all-interfaces", is_flag=True, help="Listen on 0.0.0.0 instead of 127.0.0.1 (no login: trusted networks only)."
)
def ui_command(
    port: int, grpc_port: int, http_port: int, db: str | None, max_traces: int, all_interfaces: bool
) -> None:
    """Receive OTLP locally and browse the traces in a web page: no collector, no Docker."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise click.ClickException(INSTALL_HINT) from None
    from otel_launch.local.ui.server import serve
    from otel_launch.local.ui.store import default_db_path

    serve(
        host="0.0.0.0" if all_interfaces else "127.0.0.1",
        port=port,
        grpc_port=grpc_port,
        http_port=http_port,
        db=db if db is not None else str(default_db_path()),
        max_traces=max_traces,
    )
