"""Print, as JSON, which telemetry modules this process has loaded."""

import json
import sys

print(json.dumps(sorted(name for name in sys.modules if name.startswith(("opentelemetry", "otel_launch")))))
