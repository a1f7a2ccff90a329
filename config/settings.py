"""ParkSpot settings: everything an operator tunes comes from the environment.

Unset, every service falls back to an embedded default (SQLite, local-memory
cache) so that `make run` works on a bare machine.
"""

import ipaddress
import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.limits import parse_rate
from reservations.policy import LATE_CANCEL_POLICIES

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


# A bad value stops the process at start-up with the variable's name, rather
# than meaning something else at the first booking.
def _int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _local_secret_key() -> str:
    # A per-checkout key so that no secret lives in the repository; production
    # sets DJANGO_SECRET_KEY.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _local_secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "parking",
    "lots",
    "reservations",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The driver's language (cookie, then Accept-Language); the API and /metrics
    # skip it and stay English (config/locale.py).
    "config.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# Services own their transactions (one per use case), so requests are not atomic.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
_db["ATOMIC_REQUESTS"] = False
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, which serialises
    # bookings on SQLite the way row locks do on PostgreSQL.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not shared-cache memory, so that threads in tests really race.
    # One file per test process, so that two runs in one checkout never collide.
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
elif env.bool("DATABASE_POOL", default=True):
    # A pool per process (psycopg's, through Django): a web process never holds
    # more connections than its threads can use at once, and a burst waits for
    # one (up to DATABASE_POOL_TIMEOUT seconds) instead of opening more until
    # PostgreSQL runs out. Size it to GUNICORN_THREADS.
    _db["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": _int("DATABASE_POOL_MIN_SIZE", 1),
        "max_size": _int("DATABASE_POOL_MAX_SIZE", 4, minimum=1),
        "timeout": _int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
        "max_idle": 300,
    }
else:
    _db["CONN_MAX_AGE"] = _int("DATABASE_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = True
# Prepared statements: PostgreSQL plans the hot queries once per connection
# instead of on every request. Behind PgBouncer in transaction mode this needs
# PgBouncer 1.21+ (max_prepared_statements); DATABASE_PREPARED=0 turns it off.
if _db["ENGINE"] != "django.db.backends.sqlite3" and env.bool("DATABASE_PREPARED", default=True):
    _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis down means a cache miss and a database read, never a 500.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                "SOCKET_TIMEOUT": 0.25,
            },
            # Two databases sharing one Redis must not share answers (keys carry pks).
            "KEY_PREFIX": f"parkspot:{Path(str(_db['NAME'])).name}",
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------------
AUTH_USER_MODEL = "parking.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Staff and superusers sign in to the admin with a code from an authenticator
# app too (config/two_factor.py). Off for the local demo; `check --deploy` warns
# while it is off, so production turns it on.
ADMIN_REQUIRE_2FA = env.bool("ADMIN_REQUIRE_2FA", default=False)
OTP_TOTP_ISSUER = "ParkSpot"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# --- I18N / time --------------------------------------------------------------------
LANGUAGE_CODE = "en"
# The website and the e-mails to drivers: English, French. The API stays English.
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The switcher's choice (Django's set_language) lasts a year.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static -------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production behind a TLS-terminating proxy) -----------------------------
SECURE_HSTS_SECONDS = _int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# How many reverse proxies stand in front of the app (0: none). Only their
# X-Forwarded-For and X-Forwarded-Proto are believed (config/net.py); with none,
# a client cannot pass itself off as another address or as HTTPS.
TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp; config/csp.py) -------------------------------------
# Enforced on every response: the website, the API and the admin. Our pages use only
# our own static files (htmx is vendored) and the inline SVG they draw (no image
# fetch): no inline script or style anywhere. The pay page adds Stripe.js's sources
# (derived from STRIPE_JS_URL) and the API docs a nonce and data: images, each for
# itself alone (config/csp.py). django-csp leaves DEBUG's 404 and 500 pages alone.
# Kept in this block (middleware, app) so that it stays one piece of this file.
from csp.constants import NONE, SELF  # noqa: E402

INSTALLED_APPS += ["csp"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware") + 1,
    "config.csp.CSPMiddleware",  # django-csp's; after WhiteNoise: static files need no policy
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],  # anything not named below: nothing
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],  # htmx's quote, the pay page's SetupIntent request
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "parking.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Clients are told apart by address as config/net.py does: DRF's default
    # (None) would key on the whole X-Forwarded-For, which a client writes.
    "NUM_PROXIES": TRUSTED_PROXIES,
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("THROTTLE_AUTH_RATE", default="20/min"),
        # Per driver: a person books a few times an hour; a partner or a load
        # test that books for many raises it.
        "booking": env.str("THROTTLE_BOOKING_RATE", default="30/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ParkSpot API",
    "DESCRIPTION": "Reserve a parking spot for a time window, pay for it, and report "
    "arrivals and departures from the lot's gate.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # One name for the spot features wherever they appear (lots/features.py).
    "ENUM_NAME_OVERRIDES": {"SpotFeatureEnum": "lots.features.SpotFeature"},
}

# --- Booking rules (DESIGN §4, and what things cost: reservations/policy.py) -----------
HOLD_TTL_MINUTES = _int("HOLD_TTL_MINUTES", 15, minimum=1)
NO_SHOW_GRACE_MINUTES = _int("NO_SHOW_GRACE_MINUTES", 60)
EARLY_ARRIVAL_MINUTES = _int("EARLY_ARRIVAL_MINUTES", 15)
SWEEP_INTERVAL_SECONDS = _int("SWEEP_INTERVAL_SECONDS", 60, minimum=1)
# /readyz fails when no sweep has run for this long (beat or the worker is down).
SCHEDULER_STALE_AFTER_SECONDS = _int(
    "SCHEDULER_STALE_AFTER_SECONDS", 3 * SWEEP_INTERVAL_SECONDS + 30, minimum=1
)
BOOKING_MIN_MINUTES = _int("BOOKING_MIN_MINUTES", 30, minimum=1)
BOOKING_MAX_DAYS = _int("BOOKING_MAX_DAYS", 30, minimum=1)
BOOKING_MAX_PAST_MINUTES = _int("BOOKING_MAX_PAST_MINUTES", 5)
BOOKING_MAX_AHEAD_DAYS = _int("BOOKING_MAX_AHEAD_DAYS", 90, minimum=1)
AVAILABILITY_CACHE_SECONDS = _int("AVAILABILITY_CACHE_SECONDS", 60)
# A driver's unpaid holds at once: one account cannot hold a lot's spots unpaid.
MAX_UNPAID_HOLDS = _int("MAX_UNPAID_HOLDS", 3, minimum=1)
# Cancelling a paid reservation after its start (never more than a no-show):
# "charge" the no-show charge, "elapsed" the hours since the start, or "refund"
# (free until the grace period ends).
LATE_CANCEL_POLICY = _choice("LATE_CANCEL_POLICY", "charge", LATE_CANCEL_POLICIES)
# A car parked past its end holds its spot until it leaves; bookings that would
# start on that spot within this many minutes are moved to another one.
OVERSTAY_LOOKAHEAD_MINUTES = _int("OVERSTAY_LOOKAHEAD_MINUTES", 60, minimum=1)
# A car still parked this long after its end (its exit never reported) has the
# booked price captured, long before its card hold could lapse.
UNREPORTED_EXIT_CAPTURE_MINUTES = _int("UNREPORTED_EXIT_CAPTURE_MINUTES", 120, minimum=1)
# Settlements that Stripe cannot finish yet are retried, backing off to this.
SETTLEMENT_RETRY_MAX_MINUTES = _int("SETTLEMENT_RETRY_MAX_MINUTES", 60, minimum=1)
# Drivers are e-mailed a reminder this long before a confirmed booking starts.
REMINDER_LEAD_MINUTES = _int("REMINDER_LEAD_MINUTES", 60, minimum=1)

# --- Celery (worker + exactly one beat) ------------------------------------------------------
# Unset: kombu's file-system transport under var/, so `make run` needs no broker.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_DIR", default=str(VAR_DIR / "celery")))
    _queue = _broker_dir / "queue"
    _queue.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "control_folder": str(_broker_dir),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task lost with its worker runs again: tasks are idempotent
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Only the beat holding the lock sends (config/beat.py): start a standby anywhere.
CELERY_BEAT_SCHEDULER = "config.beat.LockedScheduler"
CELERY_BEAT_SCHEDULE = {
    "expire-lapsed-holds": {
        "task": "reservations.tasks.expire_lapsed_holds",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "declare-no-shows": {
        "task": "reservations.tasks.declare_no_shows",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "hold-spots-of-overstayers": {
        "task": "reservations.tasks.hold_spots_of_overstayers",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "capture-unreported-exits": {
        "task": "reservations.tasks.capture_unreported_exits",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "settle-payments": {
        "task": "reservations.tasks.settle_payments",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "send-reminders": {
        "task": "reservations.tasks.send_reminders",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "retry-payment-operations": {
        "task": "payments.tasks.retry_payment_operations",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "prune-idempotency-keys": {
        "task": "reservations.tasks.prune_idempotency_keys",
        "schedule": 3600,
    },
}

# --- Partner webhooks (lots/webhooks/, reservations/services/webhooks.py; docs/webhooks.md) ---
# Beat reads new reservation events this often and sends what is due (the
# dispatch queues a send at once when it found something).
WEBHOOK_DISPATCH_SECONDS = _int("WEBHOOK_DISPATCH_SECONDS", 5, minimum=1)
WEBHOOK_DISPATCH_BATCH = _int("WEBHOOK_DISPATCH_BATCH", 1000, minimum=1)
# An event id not committed yet when its neighbours were read is re-read this long.
WEBHOOK_GAP_SECONDS = _int("WEBHOOK_GAP_SECONDS", 120, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = _int("WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Attempts before a delivery is given up (failed; staff may retry it), the first
# retry after WEBHOOK_RETRY_BASE_SECONDS, each next one 4× later (at most 12 h).
WEBHOOK_MAX_ATTEMPTS = _int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = _int("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=1)
# Endpoints must be HTTPS; plain HTTP to a loopback address only when this is on
# (development, tests).
WEBHOOK_ALLOW_LOOPBACK_HTTP = env.bool("WEBHOOK_ALLOW_LOOPBACK_HTTP", default=False)
# The delivery log keeps finished deliveries this many days (pruned hourly).
WEBHOOK_LOG_DAYS = _int("WEBHOOK_LOG_DAYS", 30, minimum=1)
CELERY_BEAT_SCHEDULE |= {
    "dispatch-webhooks": {
        "task": "reservations.tasks.dispatch_webhooks",
        "schedule": WEBHOOK_DISPATCH_SECONDS,
    },
    "send-webhooks": {
        "task": "lots.tasks.send_webhooks",
        "schedule": WEBHOOK_DISPATCH_SECONDS,
    },
    "prune-webhook-log": {"task": "lots.tasks.prune_webhook_log", "schedule": 3600},
}

# --- Payments (Stripe; localstripe in development and tests, DESIGN §5) ----------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Unset: the SDK talks to Stripe. Set (e.g. http://127.0.0.1:8420): localstripe.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_MAX_NETWORK_RETRIES = _int("STRIPE_MAX_NETWORK_RETRIES", 2)
STRIPE_WEBHOOK_TOLERANCE = _int("STRIPE_WEBHOOK_TOLERANCE", 300, minimum=1)
# Processed webhook events are kept this many days to answer Stripe's
# redeliveries (up to 3 days) as duplicates, then forgotten (pruned hourly).
STRIPE_EVENT_DAYS = _int("STRIPE_EVENT_DAYS", 30, minimum=3)
CELERY_BEAT_SCHEDULE |= {
    "prune-stripe-events": {"task": "payments.tasks.prune_stripe_events", "schedule": 3600},
}
# Card holds lapse after about 7 days: a booking whose settlement (its end) is
# further away than this is charged at once and settled by refunds instead.
CARD_HOLD_MAX_DAYS = _int("CARD_HOLD_MAX_DAYS", 6, minimum=1)

# Stripe.js: localstripe serves a stand-in of it when STRIPE_API_BASE points there.
STRIPE_JS_URL = env.str(
    "STRIPE_JS_URL",
    default=f"{STRIPE_API_BASE}/js.stripe.com/v3/"
    if STRIPE_API_BASE
    else "https://js.stripe.com/v3/",
)

# --- Metrics: /metrics in Prometheus's text format (ops-metrics; config/metrics.py) ----------
# Kept in this one block: the settings, the middleware, and the instrumented database
# and cache backends, so that it stays one piece of this file.
#
# Who may read /metrics: clients (config.net.client_ip, so TRUSTED_PROXIES counts)
# whose address is in METRICS_ALLOWED_IPS (addresses or networks; loopback only by
# default; empty: any address), and, when METRICS_TOKEN is set, only with
# `Authorization: Bearer <METRICS_TOKEN>`. Both empty: nobody. Others get a bare 403.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = [
    part.strip()
    for part in env.str("METRICS_ALLOWED_IPS", default="127.0.0.1,::1").split(",")
    if part.strip()
]
for _part in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_part, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS must list addresses or networks (10.0.0.0/8), not {_part!r}."
        ) from None
# Several processes on one machine (gunicorn's workers, the Celery worker) write
# their counters to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's own
# variable, read when it is first imported) and /metrics adds them up. Whoever
# chooses the directory empties it before the processes start: `make run` (and
# config/gunicorn.py when started without one, the bench) do. Unset: each process
# counts in memory (tests, `manage.py` commands).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
else:  # set but empty would mean "files in no directory" to prometheus_client
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
# No `*_created` series beside each counter (multiprocess mode has none either).
os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
# Request latency by view, status and method, all middleware included (in
# django-prometheus's metrics): first, so that its clock starts first.
MIDDLEWARE = ["config.metrics.RequestMetricsMiddleware", *MIDDLEWARE]  # metrics: first
# Query counts and timings (config/db: Django's backends with a timed cursor;
# vendor, features and pool unchanged).
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "config.db.")
# Cache hits, misses and timings (config/cache.py: the same backends, timed).
CACHES["default"]["BACKEND"] = {
    "django_redis.cache.RedisCache": "config.cache.RedisCache",
    "django.core.cache.backends.locmem.LocMemCache": "config.cache.LocMemCache",
}.get(CACHES["default"]["BACKEND"], CACHES["default"]["BACKEND"])
PROMETHEUS_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, float("inf")
)  # fmt: skip

# --- E-mail (console in development) ----------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = _int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ParkSpot <no-reply@parkspot.test>")
# Absolute links in e-mails (the pass, password resets).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Logging (config/logs.py, config/request_log.py) ----------------------------------
# One line per event through structlog, for every process (web, worker, beat,
# gunicorn's own): JSON objects (LOG_FORMAT=json, `make run`, production) or
# readable lines (plain, `make dev`). Each request's lines, and its Celery
# tasks' lines in the worker, carry its request id (X-Request-ID).
from config import logs as _logs  # noqa: E402

try:
    LOG_FORMAT = _logs.log_format(env.str("LOG_FORMAT", default="json"))
    LOG_LEVEL = _logs.log_level(env.str("LOG_LEVEL", default="INFO"))
except _logs.LogSettingError as exc:
    raise ImproperlyConfigured(str(exc)) from None
LOGGING = _logs.configure(LOG_FORMAT, LOG_LEVEL)
# Second, right after the metrics middleware (which stays first, see below): it
# sees every answer, a 500 included.
MIDDLEWARE.insert(
    MIDDLEWARE.index("config.metrics.RequestMetricsMiddleware") + 1,
    "config.request_log.RequestLogMiddleware",
)

# --- Accounts security: password guessing (sec-accounts) -------------------------------
# Every door that checks a password (website log-in, admin log-in, POST
# /api/v1/auth/token) goes through django-axes: failures are counted per account
# (the e-mail address) and per client address (config.net.client_ip) in the
# cache, so that every process behind one Redis agrees. At LOGIN_FAILURE_LIMIT
# failures for either, that account or that address may not log in for
# LOGIN_COOLOFF_MINUTES (each further try starts the cool-off again), even with
# the right password; a successful log-in clears the counts of its account and
# address. On the local-memory cache (no REDIS_URL) the counts are one
# process's own: right for `make run`, wrong for several gunicorn workers.
# THROTTLE_AUTH_RATE (REST_FRAMEWORK above) is separate and unchanged: it caps
# every request to the token and register endpoints per client address, right
# or wrong, where axes counts failed passwords per account and per address.
LOGIN_FAILURE_LIMIT = _int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_COOLOFF_MINUTES = _int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes asks
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out attempt before the password
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "parking.lockout.LoginAttemptsHandler"  # axes' cache handler, failing open
AXES_FAILURE_LIMIT = "parking.lockout.failure_limit"  # LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = "parking.lockout.cool_off"  # LOGIN_COOLOFF_MINUTES
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.net.client_ip"
AXES_USERNAME_CALLABLE = "parking.lockout.attempted_email"
AXES_LOCKOUT_CALLABLE = "parking.lockout.lockout_response"
AXES_ENABLE_ADMIN = False  # the cache handler keeps no rows for the admin to list

# --- Accounts security: API tokens (sec-accounts) ---------------------------------------
# A bearer token stops working this many days after it was made (401
# token_expired); a password change or reset revokes all of a driver's tokens.
API_TOKEN_LIFETIME_DAYS = _int("API_TOKEN_LIFETIME_DAYS", 30, minimum=1)


# --- Accounts security: sign-ups and e-mails (sec-accounts) ----------------------------
def _rate(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a rate like 20/hour, 5/min or 3/10min, not {value!r}."
        ) from None
    return value


# Sign-ups (website and POST /api/v1/auth/register) per client address: enough
# for an office behind one address; more is answered 429.
THROTTLE_SIGNUP_RATE = _rate("THROTTLE_SIGNUP_RATE", "20/hour")
# E-mails about an account (sign-up links, "you already have an account",
# password reset links) to one e-mail address. Beyond it nothing more is sent,
# and the answer stays the same, so it never tells whether an account exists.
THROTTLE_ACCOUNT_EMAIL_RATE = _rate("THROTTLE_ACCOUNT_EMAIL_RATE", "5/hour")
# How long the link that finishes a sign-up works.
SIGNUP_CONFIRM_HOURS = _int("SIGNUP_CONFIRM_HOURS", 72, minimum=1)
# Password reset requests per client address (429 beyond it, whatever the
# address asked about); the e-mails themselves count in THROTTLE_ACCOUNT_EMAIL_RATE.
THROTTLE_PASSWORD_RESET_RATE = _rate("THROTTLE_PASSWORD_RESET_RATE", "20/hour")


# --- The bench's ceiling (bench/ceiling) --------------------------------------------------
# `make bench` sets BENCH_CEILING=1 in its own server's environment only: a minimal
# DRF read and write beside ParkSpot's, as the yardstick its figures are divided by.
# Off everywhere else: neither the app (its table) nor its URLs exist.
BENCH_CEILING = env.bool("BENCH_CEILING", default=False)
if BENCH_CEILING:
    INSTALLED_APPS += ["bench.ceiling"]


# --- Cluster (deploy/cluster, docs/scaling.md) ------------------------------------------
# A failover answers 503 database_unavailable with this Retry-After (config/db_errors.py).
DATABASE_RETRY_AFTER_SECONDS = _int("DATABASE_RETRY_AFTER_SECONDS", 5, minimum=1)
# Seconds to wait for a new database connection (unset: libpq's default, no limit):
# a cluster sets it short so that a dead leader is a quick 503, never a hang.
if _db["ENGINE"] != "config.db.sqlite3" and env.str("DATABASE_CONNECT_TIMEOUT", default=""):
    _timeout = _int("DATABASE_CONNECT_TIMEOUT", 3, minimum=1)
    _db.setdefault("OPTIONS", {})["connect_timeout"] = _timeout
# Check a pooled connection before handing it out (one round trip): after a
# failover, the old leader's connections are thrown away unseen, not met by a request.
if env.bool("DATABASE_HEALTH_CHECKS", default=False):
    _db["CONN_HEALTH_CHECKS"] = True
# Refuse a booking POST without an Idempotency-Key (400 idempotency_key_required):
# on in a cluster, where nginx retries a failed POST on another web node.
BOOKING_IDEMPOTENCY_KEY_REQUIRED = env.bool("BOOKING_IDEMPOTENCY_KEY_REQUIRED", default=False)
# A booking's Idempotency-Key replays its first answer this many days at least,
# then it is forgotten (pruned hourly) and may book anew.
IDEMPOTENCY_KEY_DAYS = _int("IDEMPOTENCY_KEY_DAYS", 7, minimum=1)
# Read routing (config/db_router.py): only with a replica address (HAProxy's read
# port); without one there is no `replica` alias, no router, no middleware.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
# A replica further behind than this is not read from (the leader is).
DATABASE_REPLICA_MAX_LAG_SECONDS = float(env.str("DATABASE_REPLICA_MAX_LAG_SECONDS", default="5"))
# How often each process looks at the replica's health and lag.
DATABASE_REPLICA_CHECK_SECONDS = float(env.str("DATABASE_REPLICA_CHECK_SECONDS", default="2"))
# After a write, a client's reads go to the leader for this long (read your writes).
READ_YOUR_WRITES_SECONDS = _int("READ_YOUR_WRITES_SECONDS", 5, minimum=1)
if DATABASE_REPLICA_URL:
    _replica = env.db_url_config(DATABASE_REPLICA_URL)
    _replica.update(
        ENGINE=_db["ENGINE"],
        OPTIONS=dict(_db.get("OPTIONS", {})),
        ATOMIC_REQUESTS=False,
        CONN_MAX_AGE=_db.get("CONN_MAX_AGE", 0),
        CONN_HEALTH_CHECKS=_db.get("CONN_HEALTH_CHECKS", False),
        # Tests: the same test database under a second name.
        TEST={"MIRROR": "default"},
    )
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"),
        "config.db_router.PinAfterWriteMiddleware",
    )

# --- The availability question's lane (config/lean_lane.py) ------------------------
# Last, once MIDDLEWARE is complete: four of Django's middlewares in versions that
# step aside for a cookie-less, credential-less GET of a lot's availability, where
# they have nothing to do. Same places, same behaviour for every other request.
LEAN_LANE = {
    "django.contrib.sessions.middleware.SessionMiddleware": "config.lean_lane.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware": (
        "config.lean_lane.AuthenticationMiddleware"
    ),
    "django_otp.middleware.OTPMiddleware": "config.lean_lane.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware": "config.lean_lane.MessageMiddleware",
}
MIDDLEWARE = [LEAN_LANE.get(name, name) for name in MIDDLEWARE]
