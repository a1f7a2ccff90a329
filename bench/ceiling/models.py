"""The ceiling's own bookings: spot and window, nothing else."""

from django.db import models


class CeilingBooking(models.Model):
    spot = models.ForeignKey("lots.Spot", on_delete=models.CASCADE, db_index=False)
    start = models.DateTimeField()
    end = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["spot", "start"], name="ceiling_spot_start")]

    def __str__(self) -> str:
        return f"spot {self.spot_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"
