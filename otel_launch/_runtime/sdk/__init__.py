"""The OpenTelemetry SDK as otel-launch builds it in each process: from the standard variables
(``from_env``) or from an OpenTelemetry configuration file (``from_file``)."""
