"""Forms of the booking website. They check input; services decide and write.

Times are entered as wall-clock times at the lot (<input type="datetime-local">,
no offset) and turned into aware UTC datetimes with the lot's own time zone.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
)
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import ApplicationError, InvalidInput
from config.plates import normalize_plate
from lots.constants import VehicleType
from lots.features import FEATURE_FIELDS, SpotFeature
from lots.models import Lot
from lots.selectors import parse_near
from parking.models import Vehicle
from parking.notifications import email_queue
from parking.services import user_password_set
from reservations.models import Reservation
from reservations.rules import validate_extension, validate_window
from reservations.selectors import local_time_folds, local_to_utc

# Words for the website where a rule's own message speaks API (offsets, ISO 8601).
_WINDOW_MESSAGES = {
    "start_in_past": _("This time has already passed at the lot."),
    "end_before_start": _("Departure must be after arrival."),
}


class AccessibleFormMixin:
    """Every input names its help text and its error list (aria-describedby), and
    the error list is always in the page, so that a live update (htmx) can fill it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.describe_fields()

    def describe_fields(self) -> None:
        """(Re)point each input at its help text and error list; call again after
        changing help texts."""
        for name, field in self.fields.items():
            if field.widget.is_hidden:
                continue
            auto_id = self[name].auto_id
            described = [f"{auto_id}_helptext"] if field.help_text else []
            described.append(f"{auto_id}_errors")
            field.widget.attrs["aria-describedby"] = " ".join(described)

    def add_application_error(self, exc: ApplicationError, *, fields: dict | None = None) -> None:
        """Show a service's refusal next to the field it is about (or above the form)."""
        name = (fields or {}).get(exc.field, exc.field)
        self.add_error(name if name in self.fields else None, exc.detail)


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


class LocalDateTimeField(forms.DateTimeField):
    """A wall-clock time, without a time zone (the lot's is applied later)."""

    widget = DateTimeLocalInput
    default_error_messages = {"invalid": _("Enter a date and time, e.g. 2026-05-01 09:30.")}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            parsed = value
        else:
            text = str(value).strip().replace(" ", "T", 1)
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        if parsed.tzinfo is not None or not (2000 <= parsed.year <= 2200):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed.replace(second=0, microsecond=0)

    def prepare_value(self, value):
        return value  # naive on purpose: never shift it into the server's zone


def check_window_shape(form: forms.Form, start: datetime | None, end: datetime | None) -> None:
    """The rules a window obeys wherever it is (DESIGN §4), on wall-clock times."""
    if start is None or end is None:
        return
    if end <= start:
        form.add_error("end", _("Departure must be after arrival."))
    elif end - start < timedelta(minutes=settings.BOOKING_MIN_MINUTES):
        form.add_error("end", f"A booking lasts at least {settings.BOOKING_MIN_MINUTES} minutes.")
    elif end - start > timedelta(days=settings.BOOKING_MAX_DAYS):
        form.add_error("end", f"A booking lasts at most {settings.BOOKING_MAX_DAYS} days.")


class SearchForm(AccessibleFormMixin, forms.Form):
    q = forms.CharField(
        label=_("Address or place"),
        required=False,
        max_length=120,
        help_text=_("A street, area, city or car park name."),
    )
    # "lat,lng" from the browser's position (the Near me button); never typed.
    near = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    city = forms.ChoiceField(label=_("City"), required=False)
    vehicle_type = forms.ChoiceField(
        label=_("Vehicle"), choices=VehicleType.choices, initial=VehicleType.CAR
    )
    start = LocalDateTimeField(label=_("Arrival"), help_text=_("Local time at the lot."))
    end = LocalDateTimeField(label=_("Departure"), help_text=_("Local time at the lot."))
    features = forms.MultipleChoiceField(
        label=_("The spot must have"),
        choices=SpotFeature.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Only car parks with such a spot free."),
    )

    def __init__(self, *args, cities: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["city"].choices = [("", _("All cities")), *((c, c) for c in cities)]

    def clean_near(self) -> tuple[float, float] | None:
        text = self.cleaned_data.get("near") or ""
        if not text:
            return None
        try:
            return parse_near(text)
        except InvalidInput:
            raise ValidationError(
                _("Your position could not be read. Press Near me again, or search by address."),
                code="invalid_near",
            ) from None

    def clean(self):
        data = super().clean()
        check_window_shape(self, data.get("start"), data.get("end"))
        return data


@dataclass(frozen=True)
class FoldQuestion:
    """ "Which 01:30?" for a time the clocks pass twice."""

    name: str  # the form field that takes the answer
    label: str  # of the time field it is about
    time: str  # 01:30
    choices: tuple[tuple[int, str], ...]  # (fold, zone abbreviation)
    chosen: int | None


class WindowForm(AccessibleFormMixin, forms.Form):
    """A window at one lot: what its live quote and its Reserve button take."""

    vehicle_type = forms.ChoiceField(label=_("Vehicle"), choices=VehicleType.choices)
    start = LocalDateTimeField(label=_("Arrival"))
    end = LocalDateTimeField(label=_("Departure"))
    # Which of a repeated hour's two readings is meant (0: the first, 1: an hour
    # later); asked only when the clocks go back (fold_questions), never guessed.
    start_fold = forms.TypedChoiceField(
        choices=[("0", "0"), ("1", "1")],
        coerce=int,
        required=False,
        empty_value=None,
        widget=forms.HiddenInput,  # asked in the quote (parking/_fold_choice.html)
    )
    end_fold = forms.TypedChoiceField(
        choices=[("0", "0"), ("1", "1")],
        coerce=int,
        required=False,
        empty_value=None,
        widget=forms.HiddenInput,  # asked in the quote (parking/_fold_choice.html)
    )
    # What the spot must have (lots/features.py): only those the lot has spots with.
    features = forms.MultipleChoiceField(
        label=_("The spot must have"),
        choices=SpotFeature.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick only what you need: we give you a spot that has all of it."),
    )

    def __init__(
        self,
        *args,
        lot: Lot,
        vehicle_types: list[str] | None = None,
        features: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.lot = lot
        self.fold_questions: list[FoldQuestion] = []
        offered = vehicle_types or VehicleType.values
        self.fields["vehicle_type"].choices = [
            (value, label) for value, label in VehicleType.choices if value in offered
        ]
        has = FEATURE_FIELDS if features is None else features
        self.fields["features"].choices = [
            (value, label) for value, label in SpotFeature.choices if value in has
        ]
        zone = lot.tz.key.replace("_", " ")
        for name in ("start", "end"):
            self.fields[name].help_text = _("Local time in %(city)s (%(zone)s).") % {
                "city": lot.city,
                "zone": zone,
            }
        self.describe_fields()

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        check_window_shape(self, start, end)
        if start is None or end is None or self.errors:
            return data
        for name, value in (("start", start), ("end", end)):
            # A time the clocks pass twice: the driver says which (DST fall back).
            folds = local_time_folds(value, self.lot.tz)
            if folds:
                self.fold_questions.append(
                    FoldQuestion(
                        name=f"{name}_fold",
                        label=self.fields[name].label,
                        time=f"{value:%H:%M}",
                        choices=folds,
                        chosen=data.get(f"{name}_fold"),
                    )
                )
            try:
                data[f"{name}_utc"] = local_to_utc(
                    value, self.lot.tz, fold=data.get(f"{name}_fold")
                )
            except InvalidInput as exc:
                self.add_error(name, exc.detail)
        if "start_utc" in data and "end_utc" in data:
            try:
                validate_window(start=data["start_utc"], end=data["end_utc"], now=timezone.now())
            except InvalidInput as exc:
                self.add_error(exc.field, _WINDOW_MESSAGES.get(exc.code, exc.detail))
        return data


class ReserveForm(WindowForm):
    vehicle = forms.TypedChoiceField(
        label=_("Your vehicle"), required=False, coerce=int, empty_value=None
    )
    # One per rendering of the form: pressing Reserve twice books once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)

    def __init__(self, *args, vehicles: list[Vehicle] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.vehicles = {vehicle.pk: vehicle for vehicle in vehicles}
        self.fields["vehicle"].choices = [
            ("", _("Not now")),
            *((vehicle.pk, _vehicle_label(vehicle)) for vehicle in vehicles),
        ]
        self.fields["vehicle"].help_text = _("Its plate goes on your pass.")
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)

    def clean(self):
        data = super().clean()
        vehicle = self.vehicles.get(data.get("vehicle"))
        data["vehicle_plate"] = vehicle.plate if vehicle else ""
        vehicle_type = data.get("vehicle_type")
        if vehicle and vehicle_type and vehicle.vehicle_type != vehicle_type:
            self.add_error(
                "vehicle",
                f"{vehicle.plate} is a {vehicle.get_vehicle_type_display().lower()}: "
                f"choose {vehicle.get_vehicle_type_display()} as the vehicle type, "
                "or another vehicle.",
            )
        return data


class ExtendForm(AccessibleFormMixin, forms.Form):
    """A later departure for a booking, on the lot's wall clock."""

    end = LocalDateTimeField(label=_("New departure"))
    # Set when the price is shown: confirming twice (a double click, a reload)
    # extends once.
    key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    # The departure the price was shown for: another one is priced first.
    quoted = forms.CharField(widget=forms.HiddenInput, required=False, max_length=32)

    def __init__(self, *args, reservation: Reservation, **kwargs):
        super().__init__(*args, **kwargs)
        self.reservation = reservation
        lot = reservation.lot
        zone = lot.tz.key.replace("_", " ")
        self.fields["end"].help_text = _("Local time in %(city)s (%(zone)s).") % {
            "city": lot.city,
            "zone": zone,
        }
        self._bound_fields_cache.clear()  # bound fields copy the help text when made
        self.describe_fields()

    def clean(self):
        data = super().clean()
        end = data.get("end")
        if end is None or self.errors:
            return data
        try:
            data["end_utc"] = local_to_utc(end, self.reservation.lot.tz)
            validate_extension(
                start=self.reservation.start, end=self.reservation.end, new_end=data["end_utc"]
            )
        except InvalidInput as exc:
            self.add_error("end", _EXTEND_MESSAGES.get(exc.code, exc.detail))
        return data


_EXTEND_MESSAGES = {
    "end_not_later": _("Choose a departure later than the one you have booked."),
}


def _vehicle_label(vehicle: Vehicle) -> str:
    label = f"{vehicle.plate} · {vehicle.get_vehicle_type_display()}"
    return f"{label} ({vehicle.nickname})" if vehicle.nickname else label


_PAYMENT_METHOD = re.compile(r"^pm_[A-Za-z0-9_]{1,250}$")


class PayForm(forms.Form):
    payment_method = forms.CharField(widget=forms.HiddenInput, max_length=255)

    def clean_payment_method(self) -> str:
        value = self.cleaned_data["payment_method"].strip()
        if not _PAYMENT_METHOD.match(value):
            raise ValidationError(_("The card could not be read; enter it again."), code="invalid")
        return value


class VehicleForm(AccessibleFormMixin, forms.Form):
    plate = forms.CharField(
        label=_("Number plate"),
        max_length=30,
        help_text=_("As it is on the plate; spaces and dashes do not matter."),
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off"}),
    )
    vehicle_type = forms.ChoiceField(
        label=_("Type"), choices=VehicleType.choices, initial=VehicleType.CAR
    )
    nickname = forms.CharField(
        label=_("Nickname (optional)"),
        max_length=60,
        required=False,
        help_text=_("e.g. “Work van”."),
    )

    def clean_plate(self) -> str:
        plate = normalize_plate(self.cleaned_data["plate"])
        if not plate:
            raise ValidationError(_("Enter the number plate."), code="required")
        if len(plate) > Vehicle._meta.get_field("plate").max_length:
            raise ValidationError(_("That plate is too long."), code="max_length")
        return plate


class SignUpForm(AccessibleFormMixin, forms.Form):
    full_name = forms.CharField(
        label=_("Your name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=128,
        help_text=_("At least 8 characters, not only digits, and not a common password."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class LoginForm(AccessibleFormMixin, AuthenticationForm):
    error_messages = {
        "invalid_login": _("That e-mail address and password do not match an account."),
        "inactive": _("This account is disabled."),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("E-mail address")
        self.fields["username"].widget.input_type = "email"
        self.fields["username"].widget.attrs["autocomplete"] = "email"
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"


class ResetForm(AccessibleFormMixin, PasswordResetForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].label = _("E-mail address")

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ) -> None:
        """Written here, sent by the worker: the answer takes as long whether the
        address has an account (and gets an e-mail) or not."""
        subject = render_to_string(subject_template_name, context)
        body = render_to_string(email_template_name, context)
        email_queue(subject=" ".join(subject.split()), body=body, to=to_email)


class _PasswordSetThroughService:
    """Saving sets the password with user_password_set, which also revokes the
    account's API tokens (and so, with the new hash, ends its other sessions)."""

    def save(self, commit: bool = True):
        return user_password_set(user=self.user, password=self.cleaned_data["new_password1"])


class NewPasswordForm(_PasswordSetThroughService, AccessibleFormMixin, SetPasswordForm):
    """A new password from a reset link."""


class ChangePasswordForm(_PasswordSetThroughService, AccessibleFormMixin, PasswordChangeForm):
    """A new password from the account page, after the current one."""
