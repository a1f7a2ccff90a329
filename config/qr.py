"""The QR code of a reservation's pass, drawn the same on the website and in e-mails."""

from __future__ import annotations

import segno


def qr_code(code: str) -> segno.QRCode:
    # make_qr: a full QR code even for short data (segno.make would pick a Micro
    # QR code, which many phone cameras and gate scanners cannot read).
    return segno.make_qr(code, error="m")
