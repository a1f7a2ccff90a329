from django.apps import AppConfig


class ParkingConfig(AppConfig):
    name = "parking"
    verbose_name = "Drivers"

    def ready(self) -> None:
        from parking import schema  # noqa: F401  (registers the OpenAPI auth scheme)
