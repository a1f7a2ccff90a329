"""Gate keys: `gate_key create --lot <lot id> --name <name>` prints a new key
once; `gate_key revoke --lot <lot id> --name <name>` stops it; `gate_key list`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from lots.models import GateDevice, Lot
from lots.services import gate_create, gate_revoke


class Command(BaseCommand):
    help = "Create, revoke or list the keys that lot gates authenticate with."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a gate and print its key (shown once).")
        create.add_argument("--lot", required=True, help="The lot's id (its slug).")
        create.add_argument("--name", required=True)
        revoke = sub.add_parser("revoke", help="Stop a gate's key from working.")
        revoke.add_argument("--lot", required=True)
        revoke.add_argument("--name", required=True)
        listing = sub.add_parser("list", help="List gates (key prefixes only).")
        listing.add_argument("--lot")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            gates = GateDevice.objects.select_related("lot").order_by("lot__slug", "name")
            if options.get("lot"):
                gates = gates.filter(lot=self._lot(options["lot"]))
            for gate in gates:
                state = "active" if gate.is_active else "revoked"
                self.stdout.write(
                    f"{gate.lot.slug}\t{gate.name}\t{gate.key_prefix}…\t{state}\t"
                    f"last seen {gate.last_seen_at or 'never'}"
                )
            return
        lot = self._lot(options["lot"])
        if action == "create":
            try:
                gate, key = gate_create(lot=lot, name=options["name"])
            except ApplicationError as exc:
                raise CommandError(exc.detail) from exc
            self.stdout.write(f"Gate {gate.name!r} of {lot.slug}. Its key (shown only now):")
            self.stdout.write(key)
            return
        gate = GateDevice.objects.filter(lot=lot, name=options["name"]).first()
        if gate is None:
            raise CommandError(f"{lot.slug} has no gate named {options['name']!r}.")
        gate_revoke(gate_id=gate.pk)
        self.stdout.write(f"Revoked gate {gate.name!r} of {lot.slug}.")

    def _lot(self, slug: str) -> Lot:
        lot = Lot.objects.filter(slug=slug).first()
        if lot is None:
            raise CommandError(f"There is no lot {slug!r}.")
        return lot
