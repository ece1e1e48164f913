"""Jinja2 for server-rendered pages: one environment, templates looked up in every domain package."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from tongban.core.i18n import Language

#: Packages whose ``templates/`` folder is searched, in order.
TEMPLATE_PACKAGES = (
    "tongban.web",
    "tongban.catalog",
    "tongban.knowledge",
    "tongban.consult",
    "tongban.intake",
    "tongban.rating",
    "tongban.hotline",
    "tongban.policy",
)
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader([PackageLoader(pkg, "templates") for pkg in TEMPLATE_PACKAGES]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.policies["ext.i18n.trimmed"] = True
    return env


def render(template: str, language: Language, context: Mapping[str, Any]) -> str:
    def _date(value: dt.date | dt.datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return format_datetime(value.astimezone(DISPLAY_TZ), fmt, locale=language.babel)
        return format_date(value, fmt, locale=language.babel)

    def _number(value: int | float) -> str:
        return format_decimal(value, locale=language.babel)

    def _gettext(message: str, **variables: Any) -> str:
        # As Jinja's "newstyle" gettext: the translation is trusted, the variables are escaped.
        translated = Markup(language.gettext(message))  # noqa: S704 - our own catalogue
        return translated % variables if variables else translated

    def _ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
        translated = Markup(language.ngettext(singular, plural, n))  # noqa: S704 - our own catalogue
        return translated % {"num": n, **variables}

    return (
        environment()
        .get_template(template)
        .render(
            **context,
            lang=language,
            gettext=_gettext,
            ngettext=_ngettext,
            _=_gettext,
            format_date=_date,
            format_number=_number,
        )
    )
