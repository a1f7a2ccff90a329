"""What the admin must refuse of its query strings and action forms itself.

Django's admin checks the lookups it builds, but hands a filter's value, an
autocomplete's term and the selected rows of an action to the database as they
came. PostgreSQL refuses a NUL byte in text, and a row id that is no number
fails in Python: both only once the query runs, as a 500. Every ModelAdmin of
ours mixes this in (tests/test_malformed_input.py checks each one).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest


def _holds_nul(request: HttpRequest) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values)
        for key, values in request.GET.lists()
    )


class AdminInputMixin:
    def get_changelist_instance(self, request: HttpRequest):
        # The admin's own answer to a bad filter: back to the list, "?e=1".
        if _holds_nul(request):
            raise IncorrectLookupParameters("A NUL byte in the query string.")
        return super().get_changelist_instance(request)

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # The changelist's search form refuses NUL already; the autocomplete does not.
        if "\x00" in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def response_action(self, request: HttpRequest, queryset):
        pk = self.model._meta.pk
        try:
            for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            self.message_user(request, "Those rows are not in this list.", messages.ERROR)
            return None  # the admin redirects back to the list
        return super().response_action(request, queryset)


class IndexedSearchMixin:
    """A search made of index ranges, `search_found(term)`, instead of
    search_fields' "contains" on each field, which reads every row of a long
    history for every page. search_fields stays declared: the admin shows its
    search box for it. Mixed in before AdminInputMixin."""

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        if "\x00" in term:  # PostgreSQL refuses it in text
            return queryset.none(), False
        return queryset.filter(self.search_found(term)), False

    def search_found(self, term: str) -> Q:
        raise NotImplementedError


# The most users whose e-mail starts with the searched text that a search looks
# for: enough for any e-mail typed in part, not a scan of every user.
USERS_BY_EMAIL = 50


def users_by_email_start(term: str) -> list[int]:
    """Ids of the users whose e-mail starts with `term`, in any case (at most
    USERS_BY_EMAIL), as values to filter by: as a subquery, PostgreSQL could not
    combine it with a search's other index ranges and read the whole table.

    E-mails are stored lower-case (UserManager, parking.services, the admin's
    user forms), so a case-sensitive LIKE on the lowered term finds them by the
    e-mail's pattern index; istartswith (UPPER(email) LIKE …) read every user."""
    users = get_user_model().objects.filter(email__startswith=term.lower())
    return list(users.values_list("pk", flat=True)[:USERS_BY_EMAIL])
