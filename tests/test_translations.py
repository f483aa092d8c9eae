"""Every translation has en.json's shape: the same keys, the same placeholders, no empty string.

en.json is the source; every other file in translations/ is checked against it. A missing key
falls back to English silently in Home Assistant, an extra key is dead text, and a missing or
renamed `{placeholder}` shows raw braces or drops a value (the zone, the battery level) from the
message a household reads. Pure Python: no Home Assistant needed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

TRANSLATIONS = Path(__file__).resolve().parents[1] / "custom_components/microgrid/translations"
ENGLISH: dict[str, Any] = json.loads((TRANSLATIONS / "en.json").read_text(encoding="utf-8"))
OTHERS = sorted(p.name for p in TRANSLATIONS.glob("*.json") if p.name != "en.json")

# `{zone}`; not `{"Zone3": 600}` (a JSON example in an action's help text).
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# The frontend formats strings as ICU messages, where an apostrophe right before `{` starts a
# quoted literal: "l'{zone}" would show "{zone}" verbatim. Write "la zone {zone}" instead.
QUOTED_PLACEHOLDER = re.compile(r"'\{")
# Measured for fr.json: 32 of 464 strings (6.9 %) equal their English, all single words that are
# French too: "Site" (13 times), "Zone", "Message", "Information", "Score", "Type", "Horizon",
# "Action", "Conservation". A copy of en.json is at 100 %, a half-translated file near 50 %.
MAX_SAME_AS_ENGLISH = 0.10
# Names and single words may stay the same; a phrase of this many words or more may not.
PHRASE_WORDS = 3


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path of every leaf (non-dict value) -> that value."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(leaves(value, path))
        else:
            out[path] = value
    return out


def paths(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted path of every key at every depth, branches and leaves alike."""
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(value, dict):
            out |= paths(value, path)
    return out


EN_LEAVES = leaves(ENGLISH)


def placeholders(text: Any) -> set[str]:
    """The `{name}` placeholders in a string."""
    return set(PLACEHOLDER.findall(str(text)))


def key_problems(tree: dict[str, Any]) -> list[str]:
    """Keys missing or extra at any depth; a branch where English has a leaf, or the reverse."""
    problems = [f"missing {p}" for p in sorted(paths(ENGLISH) - paths(tree))]
    problems += [f"extra {p}" for p in sorted(paths(tree) - paths(ENGLISH))]
    tree_leaves, tree_paths, en_paths = leaves(tree), paths(tree), paths(ENGLISH)
    problems += [
        f"{p} is a leaf here, a branch in en.json"
        for p in tree_leaves
        if p in en_paths and p not in EN_LEAVES
    ]
    problems += [
        f"{p} is a branch here, a leaf in en.json"
        for p in EN_LEAVES
        if p in tree_paths and p not in tree_leaves
    ]
    return problems


def empty_problems(tree: dict[str, Any]) -> list[str]:
    """Leaves that are not strings, are blank, or carry leading or trailing spaces."""
    return [
        f"{path}: {value!r}"
        for path, value in leaves(tree).items()
        if not isinstance(value, str) or not value.strip() or value != value.strip()
    ]


def placeholder_problems(tree: dict[str, Any]) -> list[str]:
    """Strings whose placeholder set differs from English, or hides one behind an apostrophe."""
    tree_leaves = leaves(tree)
    problems = [
        f"{path}: {sorted(placeholders(tree_leaves[path]))} != english {sorted(placeholders(en))}"
        for path, en in EN_LEAVES.items()
        if path in tree_leaves and placeholders(tree_leaves[path]) != placeholders(en)
    ]
    problems += [
        f"{path}: an apostrophe right before {{ quotes the placeholder: {value!r}"
        for path, value in tree_leaves.items()
        if QUOTED_PLACEHOLDER.search(str(value))
    ]
    return problems


def format_problems(tree: dict[str, Any]) -> list[str]:
    """`exceptions.*.message` that Python's str.format (the alert manager's) cannot fill."""
    problems = []
    for key, entry in tree.get("exceptions", {}).items():
        message = str(entry.get("message", ""))
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(message) if f}
            message.format(**dict.fromkeys(fields, "x"))
        except (KeyError, IndexError, ValueError) as err:
            problems.append(f"exceptions.{key}.message: {err!r}")
    return problems


def untranslated(tree: dict[str, Any]) -> tuple[float, list[str]]:
    """The share of strings equal to their English, and those of them that are phrases."""
    tree_leaves = leaves(tree)
    same = sorted(path for path, en in EN_LEAVES.items() if tree_leaves.get(path) == en)
    phrases = [path for path in same if len(EN_LEAVES[path].split()) >= PHRASE_WORDS]
    return len(same) / len(EN_LEAVES), phrases


def load(name: str) -> dict[str, Any]:
    """A translation file, parsed."""
    return json.loads((TRANSLATIONS / name).read_text(encoding="utf-8"))


def test_there_is_a_second_language() -> None:
    """fr.json ships; the parametrized tests below would pass on an empty list."""
    assert "fr.json" in OTHERS


@pytest.mark.parametrize("name", OTHERS)
def test_same_keys_as_english(name: str) -> None:
    """No key missing, none extra, at any depth."""
    problems = key_problems(load(name))
    assert not problems, f"{name}: {problems}"


@pytest.mark.parametrize("name", OTHERS)
def test_no_empty_string(name: str) -> None:
    """Every leaf is a non-blank string."""
    problems = empty_problems(load(name))
    assert not problems, f"{name}: {problems}"


@pytest.mark.parametrize("name", OTHERS)
def test_same_placeholders(name: str) -> None:
    """Each string names exactly the `{placeholders}` its English names."""
    problems = placeholder_problems(load(name))
    assert not problems, f"{name}: {problems}"


@pytest.mark.parametrize("name", OTHERS)
def test_messages_format_in_python(name: str) -> None:
    """No stray brace breaks the alert manager's str.format on a message."""
    problems = format_problems(load(name))
    assert not problems, f"{name}: {problems}"


@pytest.mark.parametrize("name", OTHERS)
def test_is_translated(name: str) -> None:
    """Not a copy of en.json: a small share of single words at most equals the English."""
    share, phrases = untranslated(load(name))
    assert share <= MAX_SAME_AS_ENGLISH, f"{name}: {share:.1%} of its strings are English"
    assert not phrases, f"{name}: untranslated: {phrases}"


def test_checks_catch_broken_files() -> None:
    """Each check reports what it exists for (English itself passes the shape checks)."""
    for check in (key_problems, empty_problems, placeholder_problems, format_problems):
        assert not check(ENGLISH), check.__name__
    assert untranslated(ENGLISH)[0] == 1

    def broken(edit: Any) -> dict[str, Any]:
        tree = copy.deepcopy(ENGLISH)
        edit(tree)
        return tree

    missing = broken(lambda t: t["issues"]["command_failed"].pop("description"))
    assert key_problems(missing) == ["missing issues.command_failed.description"]
    deep_extra = broken(lambda t: t["entity"]["sensor"]["battery_soc"].update(state={"x": "y"}))
    assert key_problems(deep_extra) == [
        "extra entity.sensor.battery_soc.state",
        "extra entity.sensor.battery_soc.state.x",
    ]
    flattened = broken(lambda t: t["selector"].update(schedule="Horaire"))
    assert "missing selector.schedule.options" in key_problems(flattened)
    assert "selector.schedule is a leaf here, a branch in en.json" in key_problems(flattened)
    nested = broken(lambda t: t["exceptions"]["admin_only"].update(message={"x": "y"}))
    assert "exceptions.admin_only.message is a branch here, a leaf in en.json" in key_problems(
        nested
    )

    blank = broken(lambda t: t["exceptions"]["admin_only"].update(message=" "))
    assert empty_problems(blank) == ["exceptions.admin_only.message: ' '"]

    renamed = broken(lambda t: t["exceptions"]["unknown_zone"].update(message="Pas de {nom}."))
    assert placeholder_problems(renamed) == [
        "exceptions.unknown_zone.message: ['nom'] != english ['zone']"
    ]
    elided = broken(lambda t: t["exceptions"]["no_override"].update(message="Rien à l'{zone}."))
    assert len(placeholder_problems(elided)) == 1
    assert not placeholders('e.g. {"Zone3": 600}')

    stray = broken(lambda t: t["exceptions"]["training_failed"].update(message="Échec : {error"))
    assert len(format_problems(stray)) == 1
