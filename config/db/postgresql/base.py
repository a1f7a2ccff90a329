"""PostgreSQL (psycopg 3, pooled or not) with every query timed (config/db)."""

from django.db.backends.postgresql import base
from psycopg import _queries

from config.db import timed_cursor_class

# psycopg turns a query's placeholders into PostgreSQL's on every run unless the
# query is short enough for it to remember the result (4 kB, 50 parameters by
# default). The one-statement booking (reservations/hot_sql.py) is longer: the
# conversion cost it about a millisecond of CPU a booking. Our queries are a
# fixed set, so remembering longer ones (in psycopg's LRU of 128) costs nothing.
CACHED_STATEMENT_LENGTH = 32_768
CACHED_STATEMENT_PARAMS = 200
_queries.MAX_CACHED_STATEMENT_LENGTH = max(
    _queries.MAX_CACHED_STATEMENT_LENGTH, CACHED_STATEMENT_LENGTH
)
_queries.MAX_CACHED_STATEMENT_PARAMS = max(
    _queries.MAX_CACHED_STATEMENT_PARAMS, CACHED_STATEMENT_PARAMS
)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["cursor_factory"] = timed_cursor_class(
            params["cursor_factory"], self.alias, self.vendor
        )
        return params
