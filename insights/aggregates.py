"""PostgreSQL's ordered-set aggregate ``percentile_cont`` as an ORM aggregate."""

from __future__ import annotations

from typing import Any

from django.db.models import Aggregate, BigIntegerField, DurationField, Func


class PercentileCont(Aggregate):
    """The continuous percentile of a duration: ``percentile_cont(0.9) WITHIN
    GROUP (ORDER BY expression)``, interpolated between the two nearest
    values. NULLs are ignored (an incident nobody acknowledged has no time to
    acknowledge); no rows give None. Takes ``filter=`` like any aggregate."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile is a fraction from 0 to 1, got {fraction!r}.")
        # A float's repr is a plain SQL numeric literal: nothing from a
        # request reaches the template.
        super().__init__(
            expression, fraction=repr(float(fraction)), output_field=DurationField(), **extra
        )


class Microseconds(Func):
    """A duration as a whole number of microseconds (exact: EXTRACT(EPOCH)
    of an interval is a numeric)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()
