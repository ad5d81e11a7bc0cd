"""An app that configures its console with logging.basicConfig, as scripts and small apps do."""

import logging

from opentelemetry import trace

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("app")
log.info("configured by basicConfig")
log.debug("below the app's level")
with trace.get_tracer("app").start_as_current_span("with-log"):
    log.warning("inside a span")
logging.getLogger("opentelemetry.sdk.app").warning("an OpenTelemetry logger's record")
