"""Pages of the staff lists that grow with every booking, counted up to a cap.

The admin counts the rows a list matches for every page it shows: exact, that
count reads every matching row, 0.4 s on a year of 100 lots and about ten
times that at the spec's 1,000 lots. Nobody pages through more than a few
thousand rows; they filter or search. So these lists count at most
COUNT_CAP + 1 rows and say "more than 10,000" beyond (templates/admin/
pagination.html, search_form.html and actions.html read `cl.paginator.capped`).
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        # SELECT COUNT(*) FROM (SELECT … LIMIT cap + 1): stops at the cap.
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        """More rows match than were counted."""
        return self.count > self.cap

    @property
    def cap_text(self) -> str:
        return f"{self.cap:,}"


class CappedCountMixin:
    """For a ModelAdmin whose table grows with the bookings: pages counted up
    to the cap, and no second count of the whole table."""

    paginator = CappedCountPaginator
    show_full_result_count = False
