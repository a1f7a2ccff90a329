"""The booking website (grown by the website issue)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from lots.selectors import lot_list


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "parking/home.html", {"lots": lot_list()[:50]})
