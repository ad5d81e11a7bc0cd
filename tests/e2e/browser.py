"""What the browser tests share: Debian's Chromium (driven by playwright, never ``playwright
install``), its flags, and the check of the security headers every answer of ``otel-launch ui`` carries."""

from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("OTEL_LAUNCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def assert_security_headers(headers: dict[str, str]) -> None:
    policy = headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, headers
    assert headers.get("x-content-type-options") == "nosniff" and headers.get("x-frame-options") == "DENY", headers
