from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import health, metrics, views
from config.csp import allow_api_docs
from config.db_router import replica_reads
from config.two_factor import TwoFactorAdminSite
from config.two_factor_views import two_factor_setup
from lots import api as lots_api
from parking import api as parking_api
from reservations import api as reservations_api
from reservations import api_receipts as reservations_api_receipts

# Every app registers its admin on Django's site; this one asks for a second
# factor when ADMIN_REQUIRE_2FA is on (django-otp's documented way to swap it).
admin.site.__class__ = TwoFactorAdminSite

api_v1 = [
    path("auth/register", parking_api.RegisterApi.as_view(), name="register"),
    path("auth/token", parking_api.TokenApi.as_view(), name="token"),
    path("me/payment-methods", parking_api.SavedCardListApi.as_view(), name="saved-card-list"),
    path(
        "me/payment-methods/<str:payment_method_id>",
        parking_api.SavedCardApi.as_view(),
        name="saved-card",
    ),
    # Reads that may be a little stale: from a replica in a cluster (config/db_router.py).
    path("lots", replica_reads(lots_api.LotListApi.as_view()), name="lot-list"),
    path("lots/<str:lot_id>", replica_reads(lots_api.LotDetailApi.as_view()), name="lot-detail"),
    path(
        "lots/<str:lot_id>/availability",
        replica_reads(reservations_api.AvailabilityApi.as_view()),
        name="lot-availability",
    ),
    path(
        "reservations", reservations_api.ReservationListCreateApi.as_view(), name="reservation-list"
    ),
    path(
        "reservations/<str:reservation_id>",
        reservations_api.ReservationDetailApi.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<str:reservation_id>/complete",
        reservations_api.ReservationCompleteApi.as_view(),
        name="reservation-complete",
    ),
    path(
        "reservations/<str:reservation_id>/cancel",
        reservations_api.ReservationCancelApi.as_view(),
        name="reservation-cancel",
    ),
    path(
        "reservations/<str:reservation_id>/receipt",
        reservations_api_receipts.ReservationReceiptApi.as_view(),
        name="reservation-receipt",
    ),
    path(
        "reservations/<str:reservation_id>/extend",
        reservations_api.ReservationExtendApi.as_view(),
        name="reservation-extend",
    ),
    path("gate/arrivals", reservations_api.GateArrivalApi.as_view(), name="gate-arrivals"),
    path("gate/departures", reservations_api.GateDepartureApi.as_view(), name="gate-departures"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", allow_api_docs(views.DocsView.as_view(url_name="api:schema")), name="docs"),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus (config/metrics.py)
    path("admin/two-factor/", two_factor_setup, name="two_factor_setup"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("payments/", include("payments.urls")),
    # The booking website, with sign-up, log-in and password reset (Django's auth views).
    path("", include("parking.urls")),
]

if settings.BENCH_CEILING:  # the bench's yardstick (bench/ceiling), never in production
    urlpatterns.insert(0, path("bench-ceiling/", include("bench.ceiling.urls")))

handler400 = "config.views.bad_request"
handler403 = "config.views.permission_denied"
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
