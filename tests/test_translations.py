"""The French catalog is complete and its compiled .mo is the .po's: a fresh
machine needs no gettext tools, so the committed .mo must never lag behind."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

from django.conf import settings

PO = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
_KEYWORD = re.compile(r"^(msgctxt|msgid|msgid_plural|msgstr(?:\[(\d+)\])?) (\".*\")$")


def po_entries(path: Path = PO) -> list[dict]:
    """The .po's entries: msgid, msgid_plural, msgstr (a list, one per plural
    form), msgctxt and flags; the header (msgid "") included. Obsolete (#~)
    entries are left out, as msgfmt leaves them out."""
    entries: list[dict] = []
    entry: dict = {}
    field = ""

    def finish() -> None:
        nonlocal entry
        if "msgid" in entry:
            entries.append(entry)
        entry = {}

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            finish()
        elif line.startswith("#,"):
            entry.setdefault("flags", set()).update(f.strip() for f in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif match := _KEYWORD.match(line):
            keyword, index, literal = match.groups()
            value = ast.literal_eval(literal)
            if keyword.startswith("msgstr"):
                strs = entry.setdefault("msgstr", {})
                field = f"msgstr[{index or 0}]"
                strs[int(index or 0)] = value
            else:
                field = keyword
                entry[keyword] = value
        elif line.startswith('"'):
            value = ast.literal_eval(line)
            if field.startswith("msgstr["):
                entry["msgstr"][int(field[7:-1])] += value
            else:
                entry[field] += value
    finish()
    for item in entries:
        item["msgstr"] = [item["msgstr"][i] for i in sorted(item.get("msgstr", {}))]
        item.setdefault("flags", set())
    return entries


def test_every_french_string_is_translated_and_none_is_fuzzy():
    entries = [e for e in po_entries() if e["msgid"]]
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"])]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []


def test_the_placeholders_of_each_translation_are_those_of_its_english():
    placeholder = re.compile(r"%\((\w+)\)[sd]")
    wrong = [
        e["msgid"]
        for e in po_entries()
        if e["msgid"]
        for text in e["msgstr"]
        if set(placeholder.findall(text)) != set(placeholder.findall(e["msgid"]))
    ]
    assert wrong == []


def test_the_compiled_catalog_is_the_po_file():
    """django.mo says exactly what django.po says: run `django-admin
    compilemessages` after editing the .po, and commit both."""
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    catalog = compiled._catalog  # the one way to list what a .mo holds
    expected: dict = {}
    for e in po_entries():
        key = e["msgid"] if "msgctxt" not in e else f"{e['msgctxt']}\x04{e['msgid']}"
        if "msgid_plural" in e:
            for index, text in enumerate(e["msgstr"]):
                expected[(key, index)] = text
        else:
            expected[key] = e["msgstr"][0]
    # msgfmt leaves the POT-Creation-Date out of the header (reproducible builds).
    header = re.sub(r"POT-Creation-Date: .*\n", "", expected.pop(""))
    assert re.sub(r"POT-Creation-Date: .*\n", "", catalog.pop("")) == header
    assert catalog == expected


_GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy"}
_TRANSLATE_TAG = re.compile(r"""\{%\s*translate\s+"([^"]*)"|\{%\s*translate\s+'([^']*)'""")
# Where the driver-facing strings live (the admin, the API and the bench stay English).
_SOURCES = ("parking", "lots", "reservations", "payments", "config")
_TEMPLATES = ("templates/parking", "templates/registration", "templates/reservations")


def _marked_in_python() -> set[str]:
    found: set[str] = set()
    base = Path(settings.BASE_DIR)
    for package in _SOURCES:
        for path in (base / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in _GETTEXT_NAMES
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    found.add(node.args[0].value)
    return found


def _marked_in_templates() -> set[str]:
    base = Path(settings.BASE_DIR)
    paths = [p for folder in _TEMPLATES for p in (base / folder).rglob("*") if p.is_file()]
    paths += [base / "templates" / name for name in ("base.html", "404.html", "500.html")]
    found: set[str] = set()
    for path in paths:
        for double, single in _TRANSLATE_TAG.findall(path.read_text(encoding="utf-8")):
            found.add(double or single)
    return found


def test_every_string_marked_in_the_code_is_in_the_catalog():
    """A string marked for translation but missing from django.po shows in English
    on French pages: run makemessages (README, Languages) and translate it."""
    known = {e["msgid"] for e in po_entries()}
    missing = sorted((_marked_in_python() | _marked_in_templates()) - known)
    assert missing == []
