"""E-mails about accounts: the link that finishes a sign-up, the note to an
address that already has an account that someone tried to sign up with it, and
e-mails written elsewhere (password reset links, by Django's reset form)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from parking.models import SignupRequest, User
from parking.services import signup_token


def _send(template: str, to: str, context: dict) -> None:
    site = settings.SITE_URL.rstrip("/")
    context = {
        **context,
        "site_url": site,
        "login_url": site + reverse("login"),
        "reset_url": site + reverse("password_reset"),
    }
    subject = render_to_string(f"registration/email/{template}_subject.txt", context)
    EmailMessage(
        subject=" ".join(subject.split()),
        body=render_to_string(f"registration/email/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    ).send()


def send_signup_link(*, signup_id: int) -> None:
    signup = SignupRequest.objects.filter(pk=signup_id).first()
    if signup is None:  # confirmed through another link, or lapsed, meanwhile
        return
    path = reverse("signup_confirm", args=[signup_token(signup_id=signup.pk)])
    context = {
        "signup": signup,
        "confirm_url": settings.SITE_URL.rstrip("/") + path,
        "hours": settings.SIGNUP_CONFIRM_HOURS,
    }
    with translation.override(signup.language):
        _send("signup_link", signup.email, context)


def send_signup_existing(*, user_id: int) -> None:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return
    with translation.override(user.language):
        _send("signup_existing", user.email, {"user": user})


def send_written(*, subject: str, body: str, to: str) -> None:
    EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to]).send()
