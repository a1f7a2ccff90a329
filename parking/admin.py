"""Admin for driver accounts (e-mail login), their vehicles and API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    UserChangeForm,
)
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from config.admin_input import AdminInputMixin
from config.plates import normalize_plate
from lots.models import LotStaff
from parking.models import ApiToken, User, Vehicle
from parking.services import user_password_set

admin.site.site_header = "ParkSpot administration"
admin.site.site_title = "ParkSpot admin"
admin.site.index_title = "Lots, reservations and drivers"


def _clean_email(form, email: str) -> str:
    # Log-in is case-insensitive (UserManager.get_by_natural_key), so e-mails are
    # stored lower case and must be unique whatever their case.
    email = User.objects.normalize_email(email or "").strip().lower()
    taken = User.objects.filter(email__iexact=email).exclude(pk=form.instance.pk)
    if email and taken.exists():
        raise ValidationError("A user with this e-mail address already exists.", code="unique")
    return email


class EmailUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")
        field_classes: dict = {}

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data.get("email"))


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "full_name",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )
        field_classes: dict = {}

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data.get("email"))


class StaffPasswordChangeForm(AdminPasswordChangeForm):
    """Staff setting a user's password revoke the user's API tokens, as a driver
    changing it does (user_password_set)."""

    def save(self, commit: bool = True) -> User:
        usable = self.cleaned_data.get("set_usable_password", True)
        password = self.cleaned_data["password1"] if usable else None
        return user_password_set(user=self.user, password=password)


class VehicleForm(forms.ModelForm):
    class Meta:
        model = Vehicle
        fields = ("owner", "plate", "vehicle_type", "nickname")

    def clean_plate(self) -> str:
        # Normalised before the uniqueness check, as Vehicle.save() will store it;
        # otherwise "ab 12" would pass the check and then collide with "AB12".
        return normalize_plate(self.cleaned_data.get("plate", ""))


class VehicleInline(admin.TabularInline):
    model = Vehicle
    form = VehicleForm
    extra = 0
    fields = ("plate", "vehicle_type", "nickname", "created_at")
    readonly_fields = ("created_at",)


class LotMembershipInline(admin.TabularInline):
    """The lots a staff user runs: in the admin they see only these (superusers
    see every lot). Needs permissions on lot staff, which lot staff lack."""

    model = LotStaff
    extra = 0
    fields = ("lot", "role", "created_at")
    readonly_fields = ("created_at",)
    verbose_name = "lot staffed"
    verbose_name_plural = "Lots staffed (what this user sees in the admin)"


@admin.register(User)
class UserAdmin(AdminInputMixin, DjangoUserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    change_password_form = StaffPasswordChangeForm
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    inlines = [VehicleInline, LotMembershipInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                ),
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "usable_password", "password1", "password2"),
            },
        ),
    )

    def get_inlines(self, request: HttpRequest, obj: User | None):
        # The add page asks only for e-mail and password; vehicles come after,
        # and the lots they staff for staff users.
        if obj is None:
            return []
        if obj.is_staff:
            return self.inlines
        return [inline for inline in self.inlines if inline is not LotMembershipInline]


@admin.register(Vehicle)
class VehicleAdmin(AdminInputMixin, admin.ModelAdmin):
    form = VehicleForm
    list_display = ("plate", "vehicle_type", "owner", "nickname", "created_at")
    list_filter = ("vehicle_type",)
    search_fields = ("plate", "owner__email", "nickname")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)
    fields = ("owner", "plate", "vehicle_type", "nickname", "created_at")
    readonly_fields = ("created_at",)


@admin.register(ApiToken)
class ApiTokenAdmin(AdminInputMixin, admin.ModelAdmin):
    """Tokens are created through the API and shown once; here they can be seen
    (by prefix, never by hash) and revoked by deleting them."""

    list_display = ("prefix_display", "user", "created_at", "last_used_at", "expires_at")
    search_fields = ("prefix", "user__email")
    list_select_related = ("user",)
    fields = ("prefix", "user", "created_at", "last_used_at", "expires_at")
    readonly_fields = fields
    date_hierarchy = "created_at"

    @admin.display(description="Token", ordering="prefix")
    def prefix_display(self, token: ApiToken) -> str:
        return f"{token.prefix}…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
