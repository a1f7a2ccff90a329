"""Where one request's time goes, in-process (no HTTP, no gunicorn): cProfile.

    DATABASE_URL=postgres://…/parkspot_bench REDIS_URL=redis://…/15 \\
    .venv/bin/python bench/profile_request.py [--n 2000] [--top 25] [--stock] [PATH]

Runs Django's WSGI handler (every middleware, the view, the renderer) on the
same request N times after one warm-up call, and prints the wall time per
request and the functions it spent the most time in. Point it at a database a
bench run left behind (`<name>_bench`) and at the bench's Redis database, and
ask for a window of a seeded lot, so that the answer comes from the cache.

--stock measures what a request cost before the lean path: django-csp's own
middleware, and an Accept header that sends availability down DRF's path.

--book profiles bookings instead (POST /api/v1/reservations, a new window each
time, drawn as the bench draws them: a quarter hour in the next 60 days, among
the seeded history; `--far`: 60 to 120 days ahead, past it), each by a new
driver with a bearer token and an Idempotency-Key, as a returning driver (its
token's use recorded, its hour's booking count started), and also prints the
queries one booking makes and the PostgreSQL backend's CPU per booking. It
books in the bench database (made for that), past the drivers' limits
(MAX_UNPAID_HOLDS, THROTTLE_BOOKING_RATE raised). `--sold-out` profiles
refusals instead: one window at the smallest lot, filled first.

--book --explain prints instead the shared buffers (pages) each statement of a
booking reads, from PostgreSQL's own plans (auto_explain): unlike times, they do
not depend on what else the machine runs, so a short and a long history
(BENCH_HISTORY_DAYS) can be compared on a busy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def environ_for(path: str, accept: str) -> dict:
    route, _, query = path.partition("?")
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    return {
        **extra,
        "REQUEST_METHOD": "GET",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def booking_environ(body: bytes, token: str, key: str) -> dict:
    environ = environ_for("/api/v1/reservations", "")
    environ.update(
        REQUEST_METHOD="POST",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(body)),
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def explain_bookings(call, *, n: int) -> None:
    """What each statement of a booking reads, from PostgreSQL's own plans
    (auto_explain, sent back as notices): shared buffers hit and read per
    execution, which unlike times do not depend on what else the machine runs;
    a booking as flat as history grows reads the same number of pages."""
    import json
    from collections import defaultdict

    from django.db import connection

    plans: list[dict] = []

    def on_notice(diagnostic) -> None:
        text = diagnostic.message_primary or ""
        start = text.find("{")
        if "duration:" in text and start >= 0:
            plans.append(json.loads(text[start:]))

    with connection.cursor() as cursor:
        for statement in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_buffers = on",
            "SET auto_explain.log_timing = off",
            "SET auto_explain.log_format = json",
            "SET auto_explain.log_level = notice",
            "SET client_min_messages = notice",
        ):
            cursor.execute(statement)
    connection.connection.add_notice_handler(on_notice)
    for _ in range(n):
        call()
    connection.connection.remove_notice_handler(on_notice)
    by_statement: dict[str, list[dict]] = defaultdict(list)
    for plan in plans:
        by_statement[" ".join(plan["Query Text"].split())[:90]].append(plan["Plan"])
    print(f"statements of {n} bookings: mean shared buffers per execution (hit + read)")
    for text, nodes in sorted(by_statement.items(), key=lambda item: -len(item[1])):
        hit = sum(node.get("Shared Hit Blocks", 0) for node in nodes) / len(nodes)
        read = sum(node.get("Shared Read Blocks", 0) for node in nodes) / len(nodes)
        rows = sum(node.get("Actual Rows", 0) for node in nodes) / len(nodes)
        print(f"  {len(nodes):4d}×  hit {hit:7.1f}  read {read:6.1f}  rows {rows:5.1f}  {text}")
    text, nodes = max(by_statement.items(), key=lambda item: _pages(item[1][0]))
    print(f"where the pages of the heaviest statement go ({text[:40]}…): per execution")
    for where, (pages, loops, rows) in _pages_by_node(nodes)[:12]:
        print(f"  {pages:7.1f} pages  {loops:7.1f} loops  {rows:7.1f} rows  {where}")


def _pages(node: dict) -> int:
    return node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)


def _pages_by_node(plans: list[dict]) -> list[tuple[str, tuple[float, float, float]]]:
    """Each plan node's own pages (its children's taken off: EXPLAIN counts a
    node's buffers with its children's), loops and rows, averaged over the
    executions of one statement, heaviest first."""
    from collections import defaultdict

    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])

    def walk(node: dict, path: str) -> None:
        target = node.get("Index Name") or node.get("Relation Name") or ""
        where = f"{path} > {node['Node Type']} {target}".strip(" >")
        if node.get("Subplan Name"):
            where = f"{where} [{node['Subplan Name']}]"
        children = node.get("Plans", [])
        own = _pages(node) - sum(_pages(child) for child in children)
        total = totals[where]
        total[0] += own
        total[1] += node.get("Actual Loops", 0)
        total[2] += node.get("Actual Rows", 0) * node.get("Actual Loops", 0)
        for child in children:
            walk(child, where if len(where) < 160 else "…")

    for plan in plans:
        walk(plan, "")
    runs = len(plans)
    averaged = {
        where: (p / runs, loops / runs, rows / runs) for where, (p, loops, rows) in totals.items()
    }
    return sorted(averaged.items(), key=lambda item: -item[1][0])


def profile_bookings(
    application,
    n: int,
    top: int,
    *,
    explain: bool = False,
    sold_out: bool = False,
    far: bool = False,
) -> None:
    import json
    import random
    import secrets
    from datetime import UTC, datetime, timedelta

    from django.db import connection
    from django.db.models import Count
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.workload import SHORT_HOURS
    from config.throttles import BOOKINGS_PER_DRIVER
    from lots.models import Lot
    from parking.models import ApiToken, User
    from parking.services import api_token_create

    # A new driver for every booking, as in real traffic (a driver rarely holds
    # more than one unpaid booking): one driver's holds would otherwise pile up
    # over the runs, and with them what the limits check counts.
    run = secrets.token_hex(4)
    drivers = User.objects.bulk_create(
        User(email=f"profile-{run}-{i}@bench.parkspot.test", password="!")  # noqa: S106  (unusable)
        for i in range(3 * n + 2)
    )
    tokens = iter([api_token_create(user=driver).token for driver in drivers])
    # As the bench's returning drivers are: their token's use written down a
    # moment ago, their hour's booking count already started.
    ApiToken.objects.filter(user__in=drivers).update(last_used_at=timezone.now())
    for driver in drivers:
        BOOKINGS_PER_DRIVER.hit(f"user:{driver.pk}")
    slugs = list(Lot.objects.filter(is_active=True).values_list("slug", flat=True))
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if far:
        base += timedelta(days=60)
    rng = random.Random(1)
    statuses: list[str] = []

    if sold_out:  # the smallest lot, one window: once it is full, every answer is a 409
        slugs = [Lot.objects.annotate(n=Count("spots")).order_by("n", "slug")[0].slug]

    def call() -> bytes:
        # As the bench books: a quarter hour in the next 60 days, among the
        # seeded history (or, --far, 60 to 90 days ahead, where there is none).
        offset = timedelta(minutes=15 * rng.randrange(0, 4 * 24 * 60))
        start = base if sold_out else base + offset
        body = json.dumps(
            {
                "lot_id": rng.choice(slugs),
                "vehicle_type": "car",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=rng.choice(SHORT_HOURS))).isoformat(),
            }
        ).encode()
        environ = booking_environ(body, next(tokens), secrets.token_hex(8))
        return b"".join(application(environ, lambda status, *_: statuses.append(status)))

    print(call()[:300].decode())
    if sold_out:
        while b"no_spot_available" not in call():
            pass
    with CaptureQueriesContext(connection) as queries:
        call()
    for query in queries.captured_queries:
        print(f"  {query['time']} s  {' '.join(query['sql'].split())[:150]}")
    if explain and connection.vendor == "postgresql":
        explain_bookings(call, n=min(n, 200))
        return

    def backend_cpu() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    postgres = connection.vendor == "postgresql" and Path("/proc").exists()
    database_began = backend_cpu() if postgres else 0.0
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    cpu = (time.process_time() - cpu_began) / n
    plain = (time.perf_counter() - began) / n
    database = (
        f", PostgreSQL {(backend_cpu() - database_began) / n * 1e6:.0f} µs" if postgres else ""
    )
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        call()
    profiler.disable()
    print(
        f"bookings: statuses {sorted(set(statuses))}; unprofiled: {cpu * 1e6:.0f} µs of CPU "
        f"({plain * 1e6:.0f} µs wall){database} per booking; profile in CPU seconds for {n}"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default="")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stock", action="store_true")
    parser.add_argument("--unique", action="store_true", help="a new window each time: misses")
    parser.add_argument("--book", action="store_true", help="bookings instead (see above)")
    parser.add_argument(
        "--explain", action="store_true", help="with --book: pages each statement reads"
    )
    parser.add_argument(
        "--sold-out", action="store_true", help="with --book: refusals at a full lot instead"
    )
    parser.add_argument(
        "--far", action="store_true", help="with --book: 60 to 120 days ahead, past the history"
    )
    args = parser.parse_args()
    if args.book:
        os.environ.setdefault("MAX_UNPAID_HOLDS", "1000000")
        os.environ.setdefault("THROTTLE_BOOKING_RATE", "1000000/min")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    from datetime import UTC, datetime, timedelta
    from urllib.parse import quote, unquote

    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    django.setup()
    accept = ""
    if args.stock:
        accept = "application/json; q=1"  # negotiated: DRF's path
        settings.MIDDLEWARE = [
            "csp.middleware.CSPMiddleware" if m == "config.csp.CSPMiddleware" else m
            for m in settings.MIDDLEWARE
        ]
    application = get_wsgi_application()
    if args.book:
        profile_bookings(
            application,
            args.n,
            args.top,
            explain=args.explain,
            sold_out=args.sold_out,
            far=args.far,
        )
        return
    path = args.path
    if not path:
        from lots.models import Lot

        slug = Lot.objects.order_by("slug").values_list("slug", flat=True).first()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
        end = start + timedelta(hours=2)
        path = (
            f"/api/v1/lots/{slug}/availability?vehicle_type=car"
            f"&start={quote(start.isoformat(), safe='')}&end={quote(end.isoformat(), safe='')}"
        )
    statuses: list[str] = []
    calls = iter(range(10**9))

    def next_path() -> str:
        if not args.unique:
            return path
        # Shift the window by one more minute each call: never the same question.
        from datetime import datetime as dt

        route, _, query = path.partition("?")
        parts = dict(p.split("=", 1) for p in query.split("&"))
        shift = timedelta(minutes=next(calls))
        for key in ("start", "end"):
            moment = dt.fromisoformat(unquote(parts[key])) + shift
            parts[key] = quote(moment.isoformat(), safe="")
        return route + "?" + "&".join(f"{k}={v}" for k, v in parts.items())

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call() -> bytes:
        return b"".join(application(environ_for(next_path(), accept), start_response))

    print(call()[:300].decode())  # warm-up; fills the cache
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in range(args.n):
        call()
    plain = (time.perf_counter() - began) / args.n
    cpu = (time.process_time() - cpu_began) / args.n
    # CPU time, not wall time: on a shared machine, waits and neighbours would
    # otherwise fill the profile.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(args.n):
        call()
    profiler.disable()
    print(
        f"{path}\nstatuses {sorted(set(statuses))}; unprofiled: {cpu * 1e6:.0f} µs of CPU "
        f"({plain * 1e6:.0f} µs wall) per request; profile below in CPU seconds for {args.n}"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
