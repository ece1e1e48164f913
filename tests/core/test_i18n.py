"""The zh-Hans catalogue covers every message of the UI, and language negotiation picks the right one.

The extraction here is the one ``scripts/i18n.sh`` runs (``babel.cfg`` at the repository root), so text
added to a template or a ``gettext`` call without a translation fails this test, naming the message.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from tongban.core.errors import DomainError
from tongban.core.i18n import DEFAULT_LOCALE, LOCALES, get_language, negotiate

ROOT = Path(__file__).resolve().parents[2]
PO_FILE = ROOT / "src" / "tongban" / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")
FIX = "run `bash scripts/i18n.sh update`, then translate these in " + str(PO_FILE.relative_to(ROOT))


def _ids(message: Message) -> tuple[str, ...]:
    mid = message.id
    return (mid,) if isinstance(mid, str) else tuple(mid)


def _key(message: Message) -> str:
    return _ids(message)[0]


def _strings(message: Message) -> tuple[str, ...]:
    text = message.string or ""
    return (text,) if isinstance(text, str) else tuple(text)


def _entries(catalog: Catalog) -> Iterator[Message]:
    return (message for message in catalog if message.id)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What ``pybabel extract -F babel.cfg`` finds in the code and templates today."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "-q",
            "extract",
            "--mapping-file=babel.cfg",
            f"--output-file={pot}",
            "--no-wrap",
            "--sort-by-file",
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"extraction failed:\n{result.stdout}\n{result.stderr}"
    with pot.open("rb") as f:
        catalog = read_po(f)
    assert len(catalog) > 50, "extraction found almost nothing; is babel.cfg right?"
    return catalog


@pytest.fixture(scope="module")
def zh_catalog() -> Catalog:
    with PO_FILE.open("rb") as f:
        return read_po(f, locale="zh_Hans")


def test_zh_catalogue_declares_one_plural_form(zh_catalog: Catalog) -> None:
    assert zh_catalog.num_plurals == 1
    assert zh_catalog.plural_expr == "0"


def test_every_extracted_message_is_translated(extracted: Catalog, zh_catalog: Catalog) -> None:
    missing, untranslated, fuzzy = [], [], []
    for message in _entries(extracted):
        entry = zh_catalog.get(message.id, context=message.context)
        if entry is None:
            missing.append(_key(message))
        elif not all(s.strip() for s in _strings(entry)):
            untranslated.append(_key(message))
        elif entry.fuzzy:
            fuzzy.append(_key(message))
    problems = [
        f"{label} ({len(keys)}):\n" + "\n".join(f"  {key!r}" for key in keys)
        for label, keys in (
            ("not in the zh_Hans catalogue", missing),
            ("without a translation", untranslated),
            ("marked fuzzy", fuzzy),
        )
        if keys
    ]
    assert not problems, "\n".join(problems) + f"\n{FIX}"


def test_catalogue_has_no_fuzzy_entries(zh_catalog: Catalog) -> None:
    fuzzy = [_key(m) for m in _entries(zh_catalog) if m.fuzzy]
    assert not fuzzy, f"fuzzy entries must be reviewed and the flag removed: {fuzzy}"


def test_placeholders_are_kept(zh_catalog: Catalog) -> None:
    wrong = []
    for message in _entries(zh_catalog):
        wanted = set(PLACEHOLDER.findall(" ".join(_ids(message))))
        for string in _strings(message):
            if not string:
                continue
            if set(PLACEHOLDER.findall(string)) != wanted:
                wrong.append(f"{_key(message)!r} -> {string!r}")
                continue
            if wanted or message.pluralizable:
                try:  # as tongban.core.templating formats it
                    string % dict.fromkeys(wanted, "1")
                except (KeyError, ValueError, TypeError) as exc:
                    wrong.append(f"{_key(message)!r} -> {string!r} ({exc})")
    assert not wrong, "placeholders differ from the msgid:\n" + "\n".join(wrong)


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_error_titles_are_in_the_catalogue(zh_catalog: Catalog) -> None:
    # Error pages show ``lang.gettext(exc.title)``; the titles are marked in tongban.core.messages.
    import tongban.core.http
    import tongban.web.api  # noqa: F401 - defines NotReady

    titles = {DomainError.title} | {cls.title for cls in _subclasses(DomainError)}
    titles |= {"Method not allowed", "Error", "Internal error", "An unexpected error occurred."}
    absent = sorted(t for t in titles if not ((entry := zh_catalog.get(t)) and entry.string))
    assert not absent, f"mark these with N_() in tongban/core/messages.py and translate them: {absent}"


def test_zh_hans_translates_and_en_keeps_the_message_ids() -> None:
    zh = get_language("zh-Hans")
    assert zh.gettext("Services") == "办事服务"
    assert zh.gettext("Staff desk") == "工作台"
    assert zh.gettext("Not found") == "未找到"
    assert zh.ngettext("%(num)s item", "%(num)s items", 1) == zh.ngettext("%(num)s item", "%(num)s items", 5)
    assert "%(num)s" in zh.ngettext("%(num)s item", "%(num)s items", 5)

    en = get_language("en")
    assert en.gettext("Services") == "Services"
    assert en.ngettext("%(num)s item", "%(num)s items", 1) == "%(num)s item"
    assert en.ngettext("%(num)s item", "%(num)s items", 2) == "%(num)s items"


def test_unknown_language_code_falls_back_to_the_default() -> None:
    assert get_language("fr").code == DEFAULT_LOCALE == "zh-Hans"
    assert set(LOCALES) == {"zh-Hans", "en"}


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        # ?lang= wins over everything
        ("en", "zh-Hans", "zh-CN,zh;q=0.9", "en"),
        ("zh-Hans", "en", "en-US,en;q=0.9", "zh-Hans"),
        # then the cookie
        (None, "en", "zh-CN", "en"),
        (None, "zh-Hans", "en-GB,en;q=0.9", "zh-Hans"),
        # an unsupported query or cookie value is ignored, not trusted
        ("fr", "en", None, "en"),
        ("fr", "de", "en-GB,en;q=0.9", "en"),
        ("", "", None, "zh-Hans"),
        # then the browser's Accept-Language
        (None, None, "en-GB,en;q=0.9", "en"),
        (None, None, "en", "en"),
        (None, None, "zh-TW", "zh-Hans"),
        (None, None, "zh-Hant-HK,zh;q=0.8", "zh-Hans"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        (None, None, "fr-FR,fr;q=0.9,en;q=0.5", "en"),
        # then zh-Hans
        (None, None, "fr-FR,fr;q=0.9", "zh-Hans"),
        (None, None, "!!garbage;;q=x,,", "zh-Hans"),
        (None, None, "*", "zh-Hans"),
        (None, None, "", "zh-Hans"),
        (None, None, None, "zh-Hans"),
    ],
)
def test_negotiate(query: str | None, cookie: str | None, accept: str | None, expected: str) -> None:
    assert negotiate(query, cookie, accept) == expected
