"""Two endpoints that do the least ParkSpot's could: the bench's yardstick.

GET: one indexed SELECT (a lot's rate for a vehicle type, by the lot's slug).
POST: lock a spot row, count the overlapping bookings of that spot, insert.
Served by the same gunicorn, middleware and DRF settings as ParkSpot, so that
ParkSpot's figures can be read as a ratio to what this machine allows."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

_RATE = """
SELECT r.hourly_amount, r.daily_max_amount, l.currency
FROM lots_lot l JOIN lots_rate r ON r.lot_id = l.id
WHERE l.slug = %s AND r.vehicle_type = %s
"""
_OVERLAPS = """
SELECT COUNT(*) FROM bench_ceiling_ceilingbooking
WHERE spot_id = %s AND start < %s AND "end" > %s
"""
_INSERT = (
    'INSERT INTO bench_ceiling_ceilingbooking (spot_id, start, "end") VALUES (%s, %s, %s) '
    "RETURNING id"
)


class CeilingReadApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    schema = None

    def get(self, request, lot_id: str):
        params = request.query_params
        vehicle_type = params.get("vehicle_type", "car")
        with connection.cursor() as cursor:
            cursor.execute(_RATE, [lot_id, vehicle_type])
            row = cursor.fetchone()
        if row is None:
            return Response({"code": "lot_not_found"}, status=404)
        hourly, daily_max, currency = row
        return Response(
            {
                "lot_id": lot_id,
                "vehicle_type": vehicle_type,
                "start": params.get("start"),
                "end": params.get("end"),
                "hourly": {"amount": hourly, "currency": currency},
                "daily_max": {"amount": daily_max, "currency": currency},
            }
        )


class CeilingBookApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    schema = None

    def post(self, request):
        data = request.data
        spot = int(data["spot"])
        start = datetime.fromisoformat(data["start"])
        end = datetime.fromisoformat(data["end"])
        lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM lots_spot WHERE id = %s{lock}", [spot])  # noqa: S608
            if cursor.fetchone() is None:
                return Response({"code": "spot_not_found"}, status=404)
            cursor.execute(_OVERLAPS, [spot, end, start])
            if cursor.fetchone()[0]:
                return Response({"code": "no_spot_available"}, status=409)
            cursor.execute(_INSERT, [spot, start, end])
            booking_id = cursor.fetchone()[0]
        return Response(
            {"id": booking_id, "spot": spot, "start": data["start"], "end": data["end"]},
            status=201,
        )
