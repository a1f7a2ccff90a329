"""factory_boy factories for the domain."""

from __future__ import annotations

import factory

from lots.models import Lot, Rate, Spot
from parking.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"driver{n}@example.com")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or "correct horse battery")
        if create:
            user.save(update_fields=["password"])


class LotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lot

    slug = factory.Sequence(lambda n: f"lot-{n}")
    name = factory.Sequence(lambda n: f"Lot {n}")
    address = "1 Main Street"
    city = "Springfield"
    timezone = "America/New_York"
    currency = "usd"


class RateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rate

    lot = factory.SubFactory(LotFactory)
    vehicle_type = "car"
    hourly_amount = 300
    daily_max_amount = 2400


class SpotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Spot

    lot = factory.SubFactory(LotFactory)
    label = factory.Sequence(lambda n: f"S-{n:04}")
    vehicle_type = "car"
