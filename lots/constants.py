from django.db import models


class VehicleType(models.TextChoices):
    MOTORCYCLE = "motorcycle", "Motorcycle"
    CAR = "car", "Car"
    VAN = "van", "Van"
