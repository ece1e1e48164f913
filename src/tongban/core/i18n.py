"""Languages: zh-Hans first, English from the first page.

Message ids are English; ``locale/<locale>/LC_MESSAGES/messages.po`` (Babel catalogues) translate them.
The ``.po`` files are compiled in memory when first used, so no compiled artefact lives in the repo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: Supported locales, first one is the default. Keys are the URL/cookie codes, values Babel's names.
LOCALES: dict[str, str] = {"zh-Hans": "zh_Hans", "en": "en"}
DEFAULT_LOCALE = "zh-Hans"
LANG_COOKIE = "tongban_lang"


@dataclass(frozen=True)
class Language:
    code: str  # BCP 47 tag used in URLs, cookies and <html lang>
    babel: Locale
    translations: NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)


def _catalog_bytes(babel_name: str) -> bytes | None:
    path = resources.files("tongban") / "locale" / babel_name / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return None
    return path.read_bytes()


@cache
def get_language(code: str) -> Language:
    if code not in LOCALES:
        code = DEFAULT_LOCALE
    babel_name = LOCALES[code]
    raw = _catalog_bytes(babel_name)
    translations: NullTranslations
    if raw is None:
        translations = NullTranslations()
    else:
        catalog = read_po(io.BytesIO(raw), locale=babel_name)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        translations = Translations(buffer)
    return Language(code=code, babel=Locale.parse(babel_name), translations=translations)


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """Pick the language: explicit ``?lang=``, then the cookie, then the browser's list, then zh-Hans."""
    for candidate in (query, cookie):
        if candidate in LOCALES:
            return candidate
    if accept_language:
        for part in accept_language.split(","):
            tag = part.split(";")[0].strip().lower()
            if tag.startswith("en"):
                return "en"
            if tag.startswith("zh"):
                return "zh-Hans"
    return DEFAULT_LOCALE
