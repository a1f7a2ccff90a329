from django.apps import AppConfig


class LotsConfig(AppConfig):
    name = "lots"
    verbose_name = "Lots"

    def ready(self) -> None:
        from lots import signals  # noqa: F401  (cache invalidation on spot/rate edits)
