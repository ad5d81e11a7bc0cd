#!/usr/bin/env python
"""The demo shop's manage.py: a plain Django project with no OpenTelemetry code in it."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
