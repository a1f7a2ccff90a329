"""What a spot offers beyond its vehicle type (EV charging, accessible, covered,
a height limit) and what a driver may ask for: one place for the names, the
columns they live in and the parsing of a request, read by the API, the
website, allocation, availability and reports alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.errors import InvalidInput


class SpotFeature(models.TextChoices):
    EV_CHARGING = "ev_charging", _("EV charging")
    ACCESSIBLE = "accessible", _("Accessible")
    COVERED = "covered", _("Covered")


# The Spot column that says a spot has the feature.
FEATURE_FIELDS: dict[str, str] = {
    SpotFeature.EV_CHARGING: "has_ev_charging",
    SpotFeature.ACCESSIBLE: "is_accessible",
    SpotFeature.COVERED: "is_covered",
}

# Features few spots have: a driver who did not ask for them is given a spot
# without them when one fits as well, so they stay free for those who need them.
SCARCE_FEATURES: tuple[str, ...] = (SpotFeature.EV_CHARGING, SpotFeature.ACCESSIBLE)

# What a driver may give as their vehicle's height (a lot's limit is 100-1000 cm).
VEHICLE_HEIGHT_MIN_CM = 50
VEHICLE_HEIGHT_MAX_CM = 1000


@dataclass(frozen=True)
class SpotNeeds:
    """What a booking needs of its spot besides its type: every feature named,
    and room for a vehicle this tall (None: any height the lot takes)."""

    features: tuple[str, ...] = ()  # sorted, no repeats: hashable and canonical
    height_cm: int | None = None

    def __bool__(self) -> bool:
        return bool(self.features) or self.height_cm is not None

    @property
    def stored(self) -> str:
        """As Reservation.requested_features keeps it: "accessible,ev_charging"."""
        return ",".join(self.features)

    def describe(self) -> str:
        """For people: "EV charging and covered, for a vehicle 210 cm tall"."""
        labels = [_in_a_sentence(str(SpotFeature(name).label)) for name in self.features]
        text = gettext(" and ").join(filter(None, [", ".join(labels[:-1]), *labels[-1:]]))
        if self.height_cm is not None:
            tall = gettext("for a vehicle %(cm)s cm tall") % {"cm": self.height_cm}
            text = f"{text}, {tall}" if text else tall
        return text


NO_NEEDS = SpotNeeds()


def _in_a_sentence(label: str) -> str:
    return label if label[:2].isupper() else label.lower()  # "EV charging", "covered"


def spot_needs(features: Iterable[str] = (), height_cm: int | None = None) -> SpotNeeds:
    """SpotNeeds from what a client sent; InvalidInput (invalid_feature,
    invalid_vehicle_height) for a name or a height we do not know."""
    names = set()
    for name in features:
        if name not in FEATURE_FIELDS:
            raise InvalidInput(
                f"{str(name)[:40]!r} is not a spot feature: use "
                + ", ".join(SpotFeature.values)
                + ".",
                code="invalid_feature",
                field="features",
            )
        names.add(str(name))
    if height_cm is not None and (
        isinstance(height_cm, bool)
        or not isinstance(height_cm, int)
        or not VEHICLE_HEIGHT_MIN_CM <= height_cm <= VEHICLE_HEIGHT_MAX_CM
    ):
        raise InvalidInput(
            f"A vehicle height is a whole number of centimetres from {VEHICLE_HEIGHT_MIN_CM} "
            f"to {VEHICLE_HEIGHT_MAX_CM}.",
            code="invalid_vehicle_height",
            field="vehicle_height_cm",
        )
    return SpotNeeds(features=tuple(sorted(names)), height_cm=height_cm)


def stored_features(text: str) -> list[str]:
    """Reservation.requested_features as a list of names."""
    return [name for name in text.split(",") if name]


def spot_features(spot) -> list[str]:
    """The features a Spot has, in SpotFeature's order."""
    return [name for name, field in FEATURE_FIELDS.items() if getattr(spot, field)]
