"""The developer's own local tools (the trace viewer). ``_runtime`` never imports this package."""
