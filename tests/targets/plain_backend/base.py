"""A Django backend whose driver no instrumentation covers: SQLite, through a connection class
of this module's own (as mysqlclient or oracledb would be, with no instrumentation installed)."""

import sqlite3

from django.db.backends.sqlite3 import base


class Connection(sqlite3.Connection):
    """The driver's connection: its module is this one, not sqlite3's."""


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        return {**super().get_connection_params(), "factory": Connection}
