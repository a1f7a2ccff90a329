"""`make cluster`: ParkSpot as a cluster on one machine, in the foreground.

    etcd 127.0.0.1:2379 (one member)
    Patroni pg1 (REST 8008, PostgreSQL 5433) and pg2 (REST 8009, PostgreSQL 5434),
        streaming replication, synchronous mode
    HAProxy 5000 (the leader: writes) and 5001 (replicas: stale-tolerant reads)
    Redis 127.0.0.1:6380 (the cluster's own: cache, throttles, beat lock, broker)
    web nodes (gunicorn) 8001 and 8002, each with a Celery worker and a beat
        (config/beat.py: only the one holding the lock sends)
    localstripe (when no STRIPE_SECRET_KEY), nginx 127.0.0.1:8080 in front

Every process is started in its own process group and watched: one that dies
is started again after a pause (as systemd's Restart=always, RestartSec=...),
the Patroni nodes after longer than the leader key lives, so that a killed
leader is replaced before it comes back, as a replica. Ctrl-C or SIGTERM stops
everything started here. Each node gets the environment this was started with
(an operator or a load test changes a limit for the whole cluster there), plus
the cluster's addresses.

State lives in var/cluster/ (pids/<name>.pid for the drill, data, rendered
configuration); `make cluster-clean` removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VAR = ROOT / "var" / "cluster"
PIDS = VAR / "pids"
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent

ETCD = "127.0.0.1:2379"
NODES = [  # (Patroni name, REST port, PostgreSQL port)
    ("pg1", 8008, 5433),
    ("pg2", 8009, 5434),
]
WEB_PORTS = [8001, 8002]
NGINX_PORT = 8080
REDIS_PORT = int(os.environ.get("CLUSTER_REDIS_PORT", "6380"))
HAPROXY_STATS_PORT = 7000
LOCALSTRIPE_PORT = int(os.environ.get("CLUSTER_LOCALSTRIPE_PORT", "8430"))
DATABASE = "parkspot"
# Loopback connections are trusted (pg_hba in patroni.yml.in); Patroni still
# wants a password for its users (initdb's superuser password).
DB_PASSWORD = os.environ.get("CLUSTER_DB_PASSWORD", "parkspot")
# A replica further behind than this is out of HAProxy's read pool (bytes of WAL);
# the application also checks the lag in seconds (DATABASE_REPLICA_MAX_LAG_SECONDS).
REPLICA_MAX_LAG = "1MB"


def log(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def _db_user() -> str:
    """PostgreSQL refuses to run as root: as root, the nodes run as `postgres`."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--home", "/var/lib/postgresql", "postgres"], check=True
            )
        return "postgres"
    return pwd.getpwuid(os.geteuid()).pw_name


def pg_data_root() -> Path:
    """Where the nodes keep their data: var/cluster/pg, unless the nodes' user
    (postgres, when run as root) cannot reach it (a checkout under /root): then
    a directory of this checkout's own under /var/lib/parkspot-cluster/."""
    inside = VAR / "pg"
    if os.geteuid() != 0 or all(
        os.stat(parent).st_mode & 0o001 for parent in inside.parents if parent.exists()
    ):
        return inside
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    outside = Path("/var/lib/parkspot-cluster") / digest
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.parent.chmod(0o755)
    (VAR / "pg-data-root").write_text(str(outside))
    return outside


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    restart_after: float = 5.0  # seconds after an unexpected exit
    popen: subprocess.Popen | None = None
    died_at: float | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        kwargs: dict = {}
        if self.user and os.geteuid() == 0 and self.user != "root":
            record = pwd.getpwnam(self.user)
            kwargs.update(user=record.pw_uid, group=record.pw_gid, extra_groups=[])
            env["HOME"] = record.pw_dir
            env["USER"] = env["LOGNAME"] = self.user
        out = (VAR / "logs" / f"{self.name}.log").open("ab")
        # Its own process group: the drill kills a node whole (a gunicorn master
        # and its workers), and stopping the cluster reaches every child.
        self.popen = subprocess.Popen(
            self.argv,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        out.close()
        (PIDS / f"{self.name}.pid").write_text(str(self.popen.pid))
        self.died_at = None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def render(template: str, target: Path, **values) -> Path:
    text = Template((HERE / template).read_text()).substitute(**values)
    target.write_text(text)
    return target


def http_json(url: str, timeout: float = 1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return None, None


def wait_for(what: str, check, timeout: float, procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in procs:
            if not proc.alive():
                raise SystemExit(
                    f"{proc.name} stopped while waiting for {what}; "
                    f"see {VAR / 'logs' / (proc.name + '.log')}"
                )
        time.sleep(0.5)
    raise SystemExit(f"Timed out waiting for {what}.")


def app_env() -> dict[str, str]:
    """What every web node, worker and beat is told about the cluster."""
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5000/{DATABASE}",
        "DATABASE_REPLICA_URL": f"postgres://postgres@127.0.0.1:5001/{DATABASE}",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/1",
        "DJANGO_DEBUG": "0",
        "TRUSTED_PROXIES": "1",
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json"),
        "SITE_URL": os.environ.get("SITE_URL", f"http://127.0.0.1:{NGINX_PORT}"),
        # Retried POSTs are safe only with a key (nginx retries on the other node).
        "BOOKING_IDEMPOTENCY_KEY_REQUIRED": os.environ.get("BOOKING_IDEMPOTENCY_KEY_REQUIRED", "1"),
        # Short waits on the database: a failover is answered 503 quickly, not a hang.
        "DATABASE_CONNECT_TIMEOUT": os.environ.get("DATABASE_CONNECT_TIMEOUT", "3"),
        "DATABASE_POOL_TIMEOUT": os.environ.get("DATABASE_POOL_TIMEOUT", "5"),
        # A pooled connection is checked before use: after a failover the old
        # leader's connections are dropped unseen instead of failing a request each.
        "DATABASE_HEALTH_CHECKS": os.environ.get("DATABASE_HEALTH_CHECKS", "1"),
        "GUNICORN_WORKERS": os.environ.get("GUNICORN_WORKERS", "2"),
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    }
    if not os.environ.get("STRIPE_SECRET_KEY"):
        env.update(
            STRIPE_SECRET_KEY="sk_test_localstripe",
            STRIPE_PUBLISHABLE_KEY="pk_test_localstripe",
            STRIPE_WEBHOOK_SECRET="whsec_localstripe",
            STRIPE_API_BASE=f"http://127.0.0.1:{LOCALSTRIPE_PORT}",
        )
    return env


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env={**os.environ, **env}, check=True)


def leader_name() -> str | None:
    for _name, rest, _pg in NODES:
        status, body = http_json(f"http://127.0.0.1:{rest}/cluster")
        if status == 200 and body:
            for member in body.get("members", []):
                if member.get("role") == "leader" and member.get("state") == "running":
                    return member["name"]
    return None


class Cluster:
    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.stopping = False

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        proc.start()
        log(f"started {proc.name} (pid {proc.popen.pid})")
        return proc

    def stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        log("stopping everything the cluster started")
        # The front first, the data last.
        for proc in reversed(self.procs):
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in reversed(self.procs):
            while proc.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        for proc in self.procs:
            if proc.alive():
                proc.signal_group(signal.SIGKILL)
        # An orphaned postmaster (its Patroni killed) would hold 5433/5434.
        for name, _rest, _pg in NODES:
            pid_file = pg_data_root() / name / "postmaster.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        for pid in PIDS.glob("*.pid"):
            pid.unlink(missing_ok=True)
        log("stopped")

    def run(self) -> None:
        signal.signal(signal.SIGINT, lambda *a: self._exit())
        signal.signal(signal.SIGTERM, lambda *a: self._exit())
        try:
            self._start()
            self._watch()
        finally:
            self.stop()

    def _exit(self) -> None:
        raise SystemExit(0)

    def _start(self) -> None:
        for sub in ("logs", "pids", "etcd", "redis", "nginx"):
            (VAR / sub).mkdir(parents=True, exist_ok=True)
        user = _db_user()
        record = pwd.getpwnam(user)
        VAR.chmod(0o755)

        self.add(
            Proc(
                "redis",
                [
                    "redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
                    "--dir", str(VAR / "redis"), "--save", "", "--appendonly", "no",
                ],
            )
        )  # fmt: skip
        self.add(
            Proc(
                "etcd",
                [
                    "etcd", "--name", "etcd1", "--data-dir", str(VAR / "etcd"),
                    "--listen-client-urls", f"http://{ETCD}",
                    "--advertise-client-urls", f"http://{ETCD}",
                    "--listen-peer-urls", "http://127.0.0.1:2380",
                    "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                    "--initial-cluster", "etcd1=http://127.0.0.1:2380",
                    "--log-level", "warn",
                ],
            )
        )  # fmt: skip
        wait_for("etcd", lambda: http_json(f"http://{ETCD}/health")[0] == 200, 30, self.procs)

        # The nodes' own directory: Patroni renames or removes a data directory
        # (a failed bootstrap, a node that cannot rewind), so it must own its parent.
        pg_root = pg_data_root()
        pg_root.mkdir(parents=True, exist_ok=True)
        os.chown(pg_root, record.pw_uid, record.pw_gid)
        for name, rest, pg in NODES:
            data = pg_root / name
            sockets = pg_root / f"{name}-run"
            for path in (data, sockets):
                path.mkdir(exist_ok=True)
                os.chown(path, record.pw_uid, record.pw_gid)
                path.chmod(0o700)
            config = render(
                "patroni.yml.in",
                VAR / f"{name}.yml",
                name=name,
                rest_port=rest,
                pg_port=pg,
                etcd_hosts=ETCD,
                data_dir=data,
                bin_dir=PG_BIN,
                pgpass=sockets / "pgpass",
                password=DB_PASSWORD,
                socket_dir=sockets,
                superuser=user,
            )
            config.chmod(0o644)
            self.add(Proc(f"patroni-{name}", ["patroni", str(config)], user=user, restart_after=30))
        wait_for("a Patroni leader", lambda: leader_name() is not None, 120, self.procs)
        log(f"PostgreSQL leader: {leader_name()}")

        servers = {
            kind: "\n".join(
                f"    server {name} 127.0.0.1:{pg} maxconn 200 check port {rest}"
                for name, rest, pg in NODES
            )
            for kind in ("primary", "replica")
        }
        haproxy_cfg = render(
            "haproxy.cfg.in",
            VAR / "haproxy.cfg",
            stats_port=HAPROXY_STATS_PORT,
            primary_servers=servers["primary"],
            replica_servers=servers["replica"],
            replica_max_lag=REPLICA_MAX_LAG,
        )
        self.add(Proc("haproxy", ["haproxy", "-db", "-f", str(haproxy_cfg)]))
        wait_for("HAProxy on 5000", lambda: _pg_ready(5000), 60, self.procs)

        env = app_env()
        leader_url = f"postgres://postgres@127.0.0.1:5000/{DATABASE}"
        if (
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", "5000", "-U", user, "-d", "postgres", "-tAc",
                 f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                capture_output=True, text=True, check=True,
            ).stdout.strip() != "1"
        ):  # fmt: skip
            subprocess.run(
                ["createdb", "-h", "127.0.0.1", "-p", "5000", "-U", user, DATABASE], check=True
            )
        setup_env = {**env, "DATABASE_URL": leader_url, "LOG_FORMAT": "plain"}
        setup_env.pop("DATABASE_REPLICA_URL")
        log("migrating and seeding the database through the leader")
        manage("migrate", "--noinput", "-v0", env=setup_env)
        manage("collectstatic", "--noinput", "-v0", env=setup_env)
        manage("seed_demo", env=setup_env)

        if not os.environ.get("STRIPE_SECRET_KEY"):
            self.add(
                Proc(
                    "localstripe",
                    [PYTHON, "manage.py", "localstripe", "--port", str(LOCALSTRIPE_PORT),
                     "--webhook-url", f"http://127.0.0.1:{NGINX_PORT}/payments/webhooks/stripe/"],
                    env=env,
                )
            )  # fmt: skip
        for port in WEB_PORTS:
            metrics = VAR / "metrics" / str(port)
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir(parents=True)
            node_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics), "NODE_NAME": f"web{port}"}
            self.add(
                Proc(
                    f"web-{port}",
                    [str(VENV_BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi",
                     "--bind", f"127.0.0.1:{port}"],
                    env=node_env,
                )
            )  # fmt: skip
            self.add(
                Proc(
                    f"worker-{port}",
                    [str(VENV_BIN / "celery"), "-A", "config", "worker", "--pool", "solo",
                     "--loglevel", "INFO", "-n", f"worker{port}@%h"],
                    env=node_env,
                )
            )  # fmt: skip
            # A beat on every node; only the one holding the Redis lock sends.
            self.add(
                Proc(
                    f"beat-{port}",
                    [str(VENV_BIN / "celery"), "-A", "config", "beat", "--loglevel", "INFO",
                     "-s", str(VAR / f"celerybeat-{port}")],
                    env=node_env,
                )
            )  # fmt: skip

        nginx_var = VAR / "nginx"
        nginx_cfg = render(
            "nginx.conf.in",
            nginx_var / "nginx.conf",
            var=nginx_var,
            port=NGINX_PORT,
            web_servers="\n".join(
                f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
                for port in WEB_PORTS
            ),
        )
        self.add(Proc("nginx", ["nginx", "-p", str(nginx_var), "-c", str(nginx_cfg)]))
        wait_for(
            "the web nodes behind nginx",
            lambda: (
                all(
                    http_json(f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
                    for port in WEB_PORTS
                )
                and http_json(f"http://127.0.0.1:{NGINX_PORT}/healthz", timeout=2)[0] == 200
            ),
            120,
            self.procs,
        )
        print(
            "\n".join(
                [
                    "",
                    "cluster ready",
                    f"  ParkSpot (nginx)        http://127.0.0.1:{NGINX_PORT}/  "
                    f"(API docs /api/v1/docs/, staff /admin/)",
                    "  web nodes              "
                    + "  ".join(f"http://127.0.0.1:{port}/" for port in WEB_PORTS),
                    f"  PostgreSQL leader      postgres://{user}@127.0.0.1:5000/{DATABASE}",
                    f"  PostgreSQL replicas    postgres://{user}@127.0.0.1:5001/{DATABASE}",
                    "  Patroni REST           "
                    + "  ".join(f"http://127.0.0.1:{rest}/cluster" for _n, rest, _p in NODES),
                    f"  HAProxy stats          http://127.0.0.1:{HAPROXY_STATS_PORT}/",
                    f"  etcd                   http://{ETCD}",
                    f"  Redis                  redis://127.0.0.1:{REDIS_PORT}/0 cache, /1 broker",
                    f"  logs                   {VAR / 'logs'}/",
                    "Ctrl-C stops everything.",
                    "",
                ]
            ),
            flush=True,
        )
        (VAR / "ready").write_text(str(os.getpid()))

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            for proc in self.procs:
                if proc.alive():
                    continue
                if proc.died_at is None:
                    proc.died_at = time.monotonic()
                    code = proc.popen.returncode if proc.popen else None
                    log(f"{proc.name} exited ({code}); restarting in {proc.restart_after:.0f} s")
                    proc.signal_group(signal.SIGKILL)  # what is left of it
                elif time.monotonic() - proc.died_at >= proc.restart_after:
                    proc.start()
                    log(f"restarted {proc.name} (pid {proc.popen.pid})")


def _pg_ready(port: int) -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"], check=False
        ).returncode
        == 0
    )


def main() -> None:
    for tool in ("patroni", "etcd", "haproxy", "nginx", "redis-server", "psql"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make cluster` (it installs the packages).")
    (VAR / "ready").unlink(missing_ok=True)
    Cluster().run()


if __name__ == "__main__":
    main()
