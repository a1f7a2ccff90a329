"""The booking website's addresses (included at the site's root)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from config.db_router import replica_reads
from parking import views

urlpatterns = [
    path("", replica_reads(views.home), name="home"),
    path("search/", replica_reads(views.search), name="search"),
    path("lots/<str:lot_id>/", replica_reads(views.lot_detail), name="lot_detail"),
    path("lots/<str:lot_id>/quote/", replica_reads(views.lot_quote), name="lot_quote"),
    path("lots/<str:lot_id>/reserve/", views.reserve, name="reserve"),
    path("reservations/", views.reservation_list, name="reservation_list"),
    path("reservations/<str:code>/", views.reservation_detail, name="reservation_detail"),
    path("reservations/<str:code>/pay/", views.reservation_pay, name="reservation_pay"),
    path(
        "reservations/<str:code>/pay/setup/",
        views.reservation_pay_setup,
        name="reservation_pay_setup",
    ),
    path(
        "reservations/<str:code>/receipt/",
        views.reservation_receipt_view,
        name="reservation_receipt",
    ),
    path(
        "reservations/<str:code>/calendar.ics",
        views.reservation_calendar,
        name="reservation_calendar",
    ),
    path(
        "reservations/<str:code>/cancel/",
        views.reservation_cancel_view,
        name="reservation_cancel",
    ),
    path(
        "reservations/<str:code>/extend/",
        views.reservation_extend_view,
        name="reservation_extend",
    ),
    path("account/", views.account, name="account"),
    path("account/vehicles/<int:vehicle_id>/", views.vehicle_edit, name="vehicle_edit"),
    path("account/vehicles/<int:vehicle_id>/remove/", views.vehicle_delete, name="vehicle_delete"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path(
        "account/cards/<str:payment_method_id>/remove/",
        views.saved_card_remove_view,
        name="saved_card_remove",
    ),
    path("language/", views.set_language, name="set_language"),
    # Accounts: Django's auth views with our templates.
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/signup/sent/", views.signup_sent, name="signup_sent"),
    path("accounts/signup/confirm/<str:token>/", views.signup_confirm, name="signup_confirm"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
]
