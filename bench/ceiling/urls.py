from django.urls import path

from bench.ceiling import views

urlpatterns = [
    path("lots/<str:lot_id>/rate", views.CeilingReadApi.as_view(), name="ceiling-read"),
    path("bookings", views.CeilingBookApi.as_view(), name="ceiling-book"),
]
