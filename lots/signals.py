"""Spots and rates are edited in the admin; any change invalidates cached availability."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from lots.models import Rate, Spot
from lots.services import lot_availability_changed


@receiver([post_save, post_delete], sender=Spot)
@receiver([post_save, post_delete], sender=Rate)
def _lot_offer_changed(sender, instance, **kwargs) -> None:
    lot_availability_changed(lot_id=instance.lot_id)
