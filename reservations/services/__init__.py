"""Every write about reservations, by area:

- booking.py      reserve a spot (reserveSpot) and pay for it (completeReservation)
- extension.py    a later end for a confirmed or parked booking, paid on its card
- transitions.py  the state machine's arrows: confirm, cancel, expire, arrive, depart, no-show
- status.py       the one primitive every status write goes through (lock, check, apply, record)
- placement.py    the best free spot for a window; moving a reservation to another spot
- settlement.py   bringing a finished reservation's payments to what is owed
- notices.py      e-mails sent once: the receipt once settled, the reminder before the start
- sweeps.py       the scheduler's jobs: lapsed holds, no-shows, overstays, unreported exits,
                  old Idempotency-Keys
- staff.py        the lot staff's actions: spots out of service, refunds

What a reservation costs is decided in reservations/policy.py, never here.
"""

from reservations.models import payment_reference
from reservations.services.booking import (
    BookingResult,
    ReservationCancelled,
    VehicleAlreadyBooked,
    reservation_complete,
    reservation_create,
    reservation_payment_setup,
)
from reservations.services.extension import (
    ExtensionResult,
    reservation_extend,
)
from reservations.services.notices import (
    notice_claim,
    reminders_queue,
    reservation_receipt_queue,
)
from reservations.services.placement import NoSpotAvailable
from reservations.services.settlement import (
    reservation_settle,
    reservation_settlement_reopen,
    reservation_settlement_retry,
    reservations_settle_pending,
)
from reservations.services.staff import (
    NoSpotToMoveTo,
    ReservationMove,
    SpotHasReservations,
    SpotOutOfServiceResult,
    reservation_refund,
    spot_take_out_of_service,
)
from reservations.services.status import IllegalTransition, TransitionResult
from reservations.services.sweeps import (
    holds_expire_lapsed,
    idempotency_keys_prune,
    no_shows_declare,
    overstays_hold_spots,
    sweep_record,
    unreported_exits_capture,
)
from reservations.services.transitions import (
    SpotOccupied,
    reservation_arrive,
    reservation_cancel,
    reservation_confirm,
    reservation_depart,
    reservation_expire,
    reservation_mark_no_show,
)

__all__ = [
    "BookingResult",
    "ExtensionResult",
    "IllegalTransition",
    "NoSpotAvailable",
    "NoSpotToMoveTo",
    "ReservationCancelled",
    "ReservationMove",
    "SpotHasReservations",
    "SpotOccupied",
    "SpotOutOfServiceResult",
    "TransitionResult",
    "VehicleAlreadyBooked",
    "holds_expire_lapsed",
    "idempotency_keys_prune",
    "no_shows_declare",
    "notice_claim",
    "overstays_hold_spots",
    "payment_reference",
    "reminders_queue",
    "reservation_arrive",
    "reservation_cancel",
    "reservation_complete",
    "reservation_confirm",
    "reservation_create",
    "reservation_depart",
    "reservation_expire",
    "reservation_extend",
    "reservation_mark_no_show",
    "reservation_payment_setup",
    "reservation_receipt_queue",
    "reservation_refund",
    "reservation_settle",
    "reservation_settlement_reopen",
    "reservation_settlement_retry",
    "reservations_settle_pending",
    "spot_take_out_of_service",
    "sweep_record",
    "unreported_exits_capture",
]
