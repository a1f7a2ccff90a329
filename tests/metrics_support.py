"""Reading /metrics as Prometheus would: over HTTP (the test client, or a real
server), parsed by prometheus_client's own parser."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    text: str

    @property
    def families(self) -> dict:
        return {family.name: family for family in text_string_to_metric_families(self.text)}

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` with these labels (other labels summed), 0 if absent."""
        total = 0.0
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(key) == value for key, value in labels.items()
                ):
                    total += sample.value
        return total


def scrape(client: Client | None = None, **headers: str) -> Scrape:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return Scrape(response.content.decode())


def scrape_http(port: int, path: str = "/metrics") -> Scrape:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return Scrape(body)
    finally:
        connection.close()


class Deltas:
    """How much counters moved between two scrapes."""

    def __init__(self, client: Client | None = None):
        self.client = client
        self.before = scrape(client)

    def __call__(self, name: str, **labels: str) -> float:
        return scrape(self.client).value(name, **labels) - self.before.value(name, **labels)
