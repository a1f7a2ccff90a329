"""The bench's ceiling: the least a DRF endpoint of ParkSpot's shape can do.

Installed (app and URLs) only when the BENCH_CEILING setting is on, which only
the bench server's environment sets; never routed in production."""
