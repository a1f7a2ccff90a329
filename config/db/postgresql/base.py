"""PostgreSQL (psycopg 3, pooled or not) with every query timed (config/db)."""

from django.db.backends.postgresql import base

from config.db import timed_cursor_class


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["cursor_factory"] = timed_cursor_class(
            params["cursor_factory"], self.alias, self.vendor
        )
        return params
