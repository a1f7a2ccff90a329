"""SQLite with every query timed (config/db)."""

from functools import cached_property

from django.db.backends.sqlite3 import base

from config.db import timed_cursor_class


class DatabaseWrapper(base.DatabaseWrapper):
    @cached_property
    def _timed_cursor(self) -> type:
        return timed_cursor_class(base.SQLiteCursorWrapper, self.alias, self.vendor)

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=self._timed_cursor)
