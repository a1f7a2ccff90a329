"""Run localstripe, the Stripe stand-in used in development and tests.

localstripe keeps its state in a fixed file (/tmp/localstripe.pickle), so two
instances on one machine would overwrite each other's data; this runs it with
its state in a file of our choosing (or in memory only), and registers our
webhook endpoint so that the events it sends reach the app.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run localstripe (Stripe stand-in) on loopback for development and tests."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8420)
        parser.add_argument(
            "--state",
            default=str(settings.VAR_DIR / "localstripe.pickle"),
            help="State file; empty for memory only.",
        )
        parser.add_argument("--from-scratch", action="store_true", help="Ignore saved state.")
        parser.add_argument(
            "--webhook-url",
            default="http://127.0.0.1:8000/payments/webhooks/stripe/",
            help="Where to send events; empty to send none.",
        )

    def handle(self, *args, port: int, state: str, from_scratch: bool, webhook_url: str, **kw):
        from aiohttp import web
        from localstripe import resources, server, webhooks

        path = Path(state) if state else None

        def load(store) -> None:
            if path and path.exists():
                with path.open("rb") as f:
                    store.clear()
                    store.update(pickle.load(f))  # noqa: S301  (our own file)

        def dump(store) -> None:
            if path:
                with path.open("wb") as f:
                    pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)

        resources.Store.try_load_from_disk = load
        resources.Store.dump_to_disk = dump
        if not from_scratch:
            resources.store.try_load_from_disk()
        if webhook_url and settings.STRIPE_WEBHOOK_SECRET:
            webhooks.register_webhook("parkspot", webhook_url, settings.STRIPE_WEBHOOK_SECRET, None)

        self.stdout.write(f"localstripe on http://127.0.0.1:{port} (state: {path or 'memory'})")
        web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)
