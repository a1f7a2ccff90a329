from django.db import models
from django.utils.translation import gettext_lazy as _


class VehicleType(models.TextChoices):
    MOTORCYCLE = "motorcycle", _("Motorcycle")
    CAR = "car", _("Car")
    VAN = "van", _("Van")
