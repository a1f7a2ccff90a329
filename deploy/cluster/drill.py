"""`make cluster-drill`: a fault drill against a running `make cluster`, under load.

Several drivers (DRILL_CLIENTS threads, 4 by default) book through nginx
(127.0.0.1:8080) with an Idempotency-Key each, read availability with their
token between bookings, and retry a booking with the same key when it meets a
503, a 502/504 or a broken connection (what a well-behaved client does). Then:

    t = DRILL_WEB_KILL_AT (15 s)     SIGKILL web node 8001 (gunicorn, all its workers)
    t = DRILL_DB_KILL_AT (35 s)      SIGKILL the Patroni leader: its Patroni and its
                                     PostgreSQL (postmaster), as a machine dying would
    load goes on until writes have resumed and DRILL_AFTER (30 s) more.

It reports bookings made / refused / failed, reads, 503s, the time from the
leader's death until a booking sent after it succeeds, and checks on the new
leader that every 201 is still there (same spot and window) and that no two
blocking reservations of a spot overlap. It passes when nothing confirmed is
lost, nothing is double-booked, no request got a 500, and writes resumed within
DRILL_MAX_RESUME_SECONDS (45). The figures also go to var/cluster/drill-<time>.json.
Finally it waits for `make cluster` to bring the killed nodes back (the old
leader as a replica), so that the drill can run again.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "cluster"
PIDS = VAR / "pids"
NGINX = ("127.0.0.1", 8080)
PATRONI = {"pg1": 8008, "pg2": 8009}
LOT = os.environ.get("DRILL_LOT", "nyc-midtown")
VEHICLE = "car"

CLIENTS = int(os.environ.get("DRILL_CLIENTS", "4"))
# A driver may hold MAX_UNPAID_HOLDS (3) unpaid bookings: enough drivers that the
# load never runs out of them.
DRIVERS = int(os.environ.get("DRILL_DRIVERS", "400"))
WEB_KILL_AT = float(os.environ.get("DRILL_WEB_KILL_AT", "15"))
DB_KILL_AT = float(os.environ.get("DRILL_DB_KILL_AT", "35"))
AFTER = float(os.environ.get("DRILL_AFTER", "30"))
MAX_RESUME = float(os.environ.get("DRILL_MAX_RESUME_SECONDS", "45"))
RETRY_FOR = 90.0  # a client gives up retrying one booking after this long
RETRYABLE = {502, 503, 504}


def say(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def http_json(port: int, path: str) -> tuple[int | None, dict | None]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, json.loads(body or b"null")
    except (OSError, ValueError, http.client.HTTPException):
        return None, None


def cluster_members() -> list[dict]:
    for port in PATRONI.values():
        status, body = http_json(port, "/cluster")
        if status == 200 and body:
            return body.get("members", [])
    return []


def leader() -> str | None:
    for member in cluster_members():
        if member.get("role") == "leader" and member.get("state") == "running":
            return member["name"]
    return None


def healthy_cluster() -> bool:
    members = cluster_members()
    roles = sorted(m.get("role", "") for m in members if m.get("state") in ("running", "streaming"))
    return roles == ["leader", "sync_standby"] and all(
        http_json(port, "/healthz")[0] == 200 for port in (8001, 8002)
    )


def pg_data_root() -> Path:
    """As deploy/cluster/cluster.py chose it."""
    moved = VAR / "pg-data-root"
    return Path(moved.read_text()) if moved.exists() else VAR / "pg"


def pid_of(name: str) -> int:
    return int((PIDS / f"{name}.pid").read_text())


# --- setup and checks through Django, on the leader (HAProxy 5000) ------------------------


def django_on_leader() -> None:
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5000/parkspot"
    os.environ.pop("DATABASE_REPLICA_URL", None)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6380/0")
    os.environ.setdefault("LOG_FORMAT", "plain")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DATABASE_POOL"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_drivers(run: str, count: int) -> list[str]:
    """Drivers for this run, each with a bearer token (no password: API only)."""
    from django.db import transaction

    from parking.models import User
    from parking.services import api_token_create

    tokens = []
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(email=f"drill-{run}-{i}@parkspot.test", full_name=f"Drill {i}", password="!")
                for i in range(count)
            ]
        )
    for user in users:
        tokens.append(api_token_create(user=user).token)
    return tokens


# --- the load ---------------------------------------------------------------------------


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    bookings_201: int = 0
    replayed: int = 0
    refused: Counter = field(default_factory=Counter)  # 4xx by code
    failed: int = 0  # gave up retrying, or a 5xx other than the retryable ones
    server_errors: int = 0  # 500s: must stay 0
    transient: Counter = field(default_factory=Counter)  # retryable answers met on the way
    longest_booking: float = 0.0  # seconds from first attempt to answer, retries included
    reads_ok: int = 0
    reads_failed: Counter = field(default_factory=Counter)
    booked: list = field(default_factory=list)
    # (attempt sent, answer received, status) of every booking attempt
    attempts: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def request(conn_box: list, method: str, path: str, headers: dict, body: bytes = b""):
    """One request on the client's keep-alive connection (reopened when broken)."""
    for _ in range(2):
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection(*NGINX, timeout=40)
        try:
            conn_box[0].request(method, path, body=body or None, headers=headers)
            response = conn_box[0].getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (OSError, http.client.HTTPException):
            conn_box[0].close()
            conn_box[0] = None
    return None, {}, b""


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def client(number: int, tokens: list[str], tally: Tally, stop: threading.Event) -> None:
    from bench.workload import booked_from_answer

    rng = random.Random(number)
    conn_box: list = [None]
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    mine = tokens[number::CLIENTS]
    turn = 0
    while not stop.is_set():
        token = mine[turn % len(mine)]
        turn += 1
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = base + timedelta(minutes=30 * rng.randrange(0, 96))
        end = start + timedelta(minutes=30 * rng.randrange(2, 7))
        window = f"start={_z(start)}&end={_z(end)}&vehicle_type={VEHICLE}"
        status, _headers, _body = request(
            conn_box, "GET", f"/api/v1/lots/{LOT}/availability?{window}", auth
        )
        with tally.lock:
            if status == 200:
                tally.reads_ok += 1
            else:
                tally.reads_failed[str(status)] += 1
                if status == 500:
                    tally.server_errors += 1
        key = uuid.uuid4().hex
        body = json.dumps(
            {
                "lot_id": LOT,
                "vehicle_type": VEHICLE,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "vehicle_plate": f"DR{number}{uuid.uuid4().hex[:6].upper()}",
            }
        ).encode()
        first = time.monotonic()
        while True:
            sent = time.monotonic()
            status, headers, answer = request(
                conn_box,
                "POST",
                "/api/v1/reservations",
                {**auth, "Idempotency-Key": key},
                body,
            )
            received = time.monotonic()
            with tally.lock:
                tally.attempts.append((sent - tally.started, received - tally.started, status))
            if status is None or status in RETRYABLE:
                with tally.lock:
                    tally.transient[str(status)] += 1
                if received - first > RETRY_FOR:
                    with tally.lock:
                        tally.failed += 1
                    break
                wait = min(float(headers.get("Retry-After", "1") or 1), 1.0)
                time.sleep(wait)
                continue
            with tally.lock:
                if status == 201:
                    tally.bookings_201 += 1
                    if headers.get("Idempotent-Replayed") == "true":
                        tally.replayed += 1
                    tally.booked.append(booked_from_answer(answer))
                elif 400 <= status < 500:
                    try:
                        code = json.loads(answer).get("code", str(status))
                    except ValueError:
                        code = str(status)
                    tally.refused[code] += 1
                else:
                    tally.failed += 1
                    if status == 500:
                        tally.server_errors += 1
            break
        with tally.lock:
            tally.longest_booking = max(tally.longest_booking, time.monotonic() - first)
        time.sleep(rng.uniform(0.3, 0.7))  # think time: a moderate, steady load


# --- faults -------------------------------------------------------------------------------


def kill_web(port: int) -> None:
    pid = pid_of(f"web-{port}")
    os.killpg(pid, signal.SIGKILL)
    say(f"killed web node {port} (gunicorn process group {pid}, SIGKILL)")


def kill_leader() -> str:
    name = leader()
    if name is None:
        raise SystemExit("No Patroni leader to kill.")
    patroni = pid_of(f"patroni-{name}")
    postmaster = int((pg_data_root() / name / "postmaster.pid").read_text().split()[0])
    os.kill(patroni, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    say(f"killed the leader {name}: Patroni {patroni} and PostgreSQL {postmaster} (SIGKILL)")
    return name


def main() -> None:
    if not (VAR / "ready").exists() or http_json(NGINX[1], "/healthz")[0] != 200:
        raise SystemExit("No cluster is running: start `make cluster` first (another terminal).")
    say("waiting for a healthy cluster (leader + sync standby, both web nodes)")
    deadline = time.monotonic() + 180
    while not healthy_cluster():
        if time.monotonic() > deadline:
            raise SystemExit("The cluster is not healthy (see make cluster's output).")
        time.sleep(1)
    django_on_leader()
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    tokens = make_drivers(run, DRIVERS)
    say(f"{len(tokens)} drivers ready; {CLIENTS} clients booking on {LOT} through nginx")

    tally = Tally()
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(n, tokens, tally, stop), daemon=True)
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()

    def at(seconds: float) -> None:
        while time.monotonic() - tally.started < seconds:
            time.sleep(0.1)

    at(WEB_KILL_AT)
    kill_web(8001)
    at(DB_KILL_AT)
    killed_at = time.monotonic() - tally.started
    old_leader = kill_leader()
    resumed = None
    while time.monotonic() - tally.started < killed_at + MAX_RESUME + AFTER:
        with tally.lock:
            ok = [e for sent, e, status in tally.attempts if status == 201 and sent >= killed_at]
        if ok and resumed is None:
            resumed = min(ok) - killed_at
            say(f"writes resumed {resumed:.1f} s after the leader died (new leader: {leader()})")
        if resumed is not None and time.monotonic() - tally.started > killed_at + resumed + AFTER:
            break
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    duration = time.monotonic() - tally.started

    from django.db import connection

    from bench.database import check

    connection.close()
    verdict = check(tally.booked)
    with tally.lock:
        transient_total = sum(tally.transient.values())
        # One request, not a client's retries: never a hang past the timeouts.
        longest_attempt = max((end - sent for sent, end, _ in tally.attempts), default=0.0)
        report = {
            "run": run,
            "clients": CLIENTS,
            "seconds": round(duration, 1),
            "bookings_201": tally.bookings_201,
            "bookings_replayed_after_retry": tally.replayed,
            "bookings_refused": dict(tally.refused),
            "bookings_failed": tally.failed,
            "transient_answers_retried": dict(tally.transient),
            "server_errors_500": tally.server_errors,
            "longest_booking_s": round(tally.longest_booking, 1),
            "longest_attempt_s": round(longest_attempt, 1),
            "reads_ok": tally.reads_ok,
            "reads_failed": dict(tally.reads_failed),
            "web_node_killed_at_s": WEB_KILL_AT,
            "leader_killed": old_leader,
            "leader_killed_at_s": round(killed_at, 1),
            "new_leader": leader(),
            "writes_resumed_after_s": None if resumed is None else round(resumed, 1),
            "check": {k: v for k, v in asdict(verdict).items() if k != "seconds"},
        }
    ok = (
        verdict.ok
        and tally.server_errors == 0
        and tally.failed == 0
        and resumed is not None
        and resumed <= MAX_RESUME
        and tally.bookings_201 > 0
    )
    report["passed"] = ok
    kept = not verdict.missing_codes and not verdict.mismatched_codes
    outcome = "PASSED" if ok else "FAILED"
    out = VAR / f"drill-{run}.json"
    out.write_text(json.dumps(report, indent=2))
    print(
        "\n".join(
            [
                "",
                f"cluster drill {outcome} ({duration:.0f} s, {CLIENTS} clients)",
                f"  bookings: {tally.bookings_201} made (201; {tally.replayed} of them "
                f"replays of a retried key), {sum(tally.refused.values())} refused "
                f"{dict(tally.refused)}, {tally.failed} failed",
                f"  reads: {tally.reads_ok} ok, failed {dict(tally.reads_failed) or 0}",
                f"  transient answers retried: {transient_total} {dict(tally.transient)};"
                f" 500s: {tally.server_errors}",
                f"  longest booking: {tally.longest_booking:.1f} s with its retries, one"
                f" request {longest_attempt:.1f} s",
                f"  web node 8001 killed at {WEB_KILL_AT:.0f} s; leader {old_leader} killed at "
                f"{killed_at:.0f} s; writes resumed after "
                f"{'never' if resumed is None else f'{resumed:.1f} s'} (limit {MAX_RESUME:.0f} s)",
                f"  every 201 still there: {kept}"
                f" (missing {len(verdict.missing_codes)}, changed {len(verdict.mismatched_codes)});"
                f" overlapping blocking reservations: {verdict.overlapping}",
                f"  figures: {out}",
                "",
            ]
        ),
        flush=True,
    )
    say("waiting for make cluster to bring the killed nodes back")
    deadline = time.monotonic() + 120
    while not healthy_cluster() and time.monotonic() < deadline:
        time.sleep(1)
    say("cluster healed" if healthy_cluster() else "cluster not healed yet (see make cluster)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
