"""Explainable name rules that add the entities the statistical German NER missed.

The component ``newsflow_german_rules`` runs after ``ner`` in the same spaCy pipeline, so
``newsflow eval ner``, ``newsflow analyze`` and the enrich stage all get it. It never changes a span
the model found: a rule's span is added only where no entity (of the model or of an earlier rule)
touches any of its tokens. Each rule is a small function with a name, so ``rules=[...]`` in the
component config switches them one by one (ablations in the README).

Rules (cues written by hand; name classes come from the model's own vocab, see gazetteer.py):

- ``role_person``: a title or role noun ("Bundeskanzlerin", "Herr", "Trainer", "Fußball-Experte",
  "Sprecherin") followed by capitalised tokens ("von"/"van"/"de" allowed inside) → person;
- ``first_name_person``: a known first name followed by a capitalised surname-like token → person;
- ``legal_form_org``: capitalised tokens followed by a legal form ("GmbH", "AG", "e.V.") → org;
- ``club_org``: "FC", "SV", "VfB", ... (optionally "1.") followed by capitalised tokens → org;
- ``institution_org``: named institutions and parties ("Bundestag", "Bundesrat", "CDU", "Grünen");
- ``place_location``: "in"/"aus"/"nach"/... followed by a listed place name → location.

GermEval's conventions decide what is *not* added: adjectives ("deutsche") are ``*deriv`` and
generic institutions ("Bundesregierung", "Bundeswehr") are not annotated, so no rule adds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

FACTORY = "newsflow_german_rules"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _word_tuple(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Labels whose model spans a rule span may absorb (see GermanNameRules): persons only; measured on
# the held-out dev, absorbing org/location/misc spans changed nothing, so they stay untouched.
ABSORB = frozenset({"PER"})
Proposal = tuple[int, int, str]

# Role nouns that introduce a person's name. A token matches when it equals one of them or is a
# compound ending in one ("Ex-Bundeskanzler", "Fußball-Experte", "Vizepräsidentin").
ROLE_HEADS = _word_tuple(
    "kanzler kanzlerin präsident präsidentin minister ministerin sprecher sprecherin vorsitzende "
    "vorsitzender chef chefin trainer trainerin bürgermeister bürgermeisterin experte expertin "
    "schriftsteller schriftstellerin autor autorin sänger sängerin regisseur regisseurin direktor "
    "direktorin abgeordnete abgeordneter amtsinhaber amtsinhaberin stürmer torwart kapitän professor "
    "professorin pfarrer pfarrerin bischof papst könig königin fürst fürstin kaiser kaiserin prinz "
    "prinzessin graf gräfin schauspieler schauspielerin maler malerin komponist komponistin politiker "
    "politikerin senator senatorin staatssekretär staatssekretärin landrat landrätin schulrat kollege "
    "kollegin manager managerin"
)
# Courtesy titles and abbreviations, matched exactly.
TITLES = frozenset({"herr", "herrn", "frau", "mr.", "mrs.", "ms.", "dr.", "prof.", "sir", "lady", "st."})
# Particles inside a name ("Ole von Beust", "Joseph Victor von Scheffel").
NAME_PARTICLES = frozenset(
    {"von", "van", "de", "zu", "vom", "di", "da", "del", "della", "dos", "du", "le", "la", "al", "bin"}
)
# Second particles, only right after a first one ("von der Leyen", "van den Berg").
INNER_PARTICLES = frozenset({"der", "den", "dem", "zu", "la", "los", "las"})
# Common German nouns that are also on the name lists ("eine Art Amnesie", "im Mai", "im Norden").
COMMON_NOUNS = _words(
    "Art Mark Will Mai Juni Juli August Norden Süden Osten Westen Zug Boden Gold Rose Hope May See "
    "Berg Wald Hof Stadt Land Bad Neustadt Mitte Post Bank Kanal Insel Ende"
)
# Endings of German common nouns, which follow role words too ("Präsident Wahlkampf...").
NOUN_ENDINGS = _word_tuple("ung ungen heit keit schaft tion ität ismus nis tum ment chen lein ierung ei")
# Capitalised words that are not names even when a cue precedes them.
NOT_NAMES = _words(
    "der die das des dem den ein eine einer eines er sie es ich wir ihr und oder aber im in am an auf "
    "für mit von bei nach aus zu als wie so auch nicht noch nur dann doch jetzt heute gestern morgen "
    "dass wenn weil seit vor über unter damit daher deshalb dort hier da was wer wo man mehr alle "
    "viele"
)

# German first names, to add to the US Census first names already in the model's vocab norms.
_GERMAN_FIRST_NAMES_TEXT = (
    "Achim Alexander Alois Andrea Andreas Angela Anja Anke Annalena Annegret Annette Antje Armin "
    "Axel Barbara Bärbel Bastian Beate Bernd Bernhard Bettina Birgit Björn Boris Brigitte Burkhard "
    "Carsten Cem Christa Christian Christiane Christina Christine Christoph Claudia Cornelia Dagmar "
    "Daniel Detlef Dieter Dietmar Dirk Dorothee Edmund Elke Erich Erik Ernst Eva Florian Frank "
    "Franz Franziska Friedrich Fritz Gabriele Georg Gerd Gerda Gerhard Gisela Gregor Gudrun Guido "
    "Günter Günther Gustav Hannelore Hans Hartmut Heike Heiko Heinrich Heinz Helga Helmut Hendrik "
    "Herbert Hermann Hildegard Holger Horst Hubert Hubertus Ilse Ingeborg Ingo Ingrid Jan Jens "
    "Joachim Jochen Johann Johannes Jörg Josef Julia Jürgen Jutta Karin Karl Karsten Katarina "
    "Katharina Katja Katrin Kerstin Kevin Klaus Konrad Kurt Lars Lothar Ludwig Lukas Lutz Malte "
    "Manfred Manuela Marco Marion Markus Martin Martina Matthias Michael Monika Nils Norbert Olaf "
    "Oliver Ortwin Oskar Otto Peer Peter Petra Philipp Rainer Ralf Ralph Regina Reinhard Renate "
    "Rolf Rüdiger Sabine Sahra Sandra Sascha Saskia Sebastian Siegfried Sigmar Silke Simone Stefan "
    "Stefanie Steffen Stephan Susanne Svenja Sven Thomas Thorsten Tobias Torsten Udo Ulf Ulla "
    "Ulrich Ulrike Ursula Ute Uwe Volker Walter Werner Wilfried Wilhelm Winfried Wolfgang Yvonne"
)
GERMAN_FIRST_NAMES = frozenset(_GERMAN_FIRST_NAMES_TEXT.split())

# Legal forms that end a company name.
LEGAL_FORMS = frozenset(
    {
        "GmbH",
        "AG",
        "SE",
        "KG",
        "KGaA",
        "OHG",
        "GbR",
        "e.V.",
        "e.G.",
        "eG",
        "Inc.",
        "Ltd.",
        "Corp.",
        "plc",
        "Holding",
    }
)
CLUB_PREFIXES = frozenset({"FC", "SV", "VfB", "VfL", "TSV", "TSG", "SC", "SpVgg", "BSC", "FSV", "SSV", "KSC"})
# Named institutions and parties that GermEval annotates as ORG (with genitive forms). Generic ones
# it leaves unannotated ("Bundesregierung", "Bundeswehr", "Landesregierung") are deliberately absent.
INSTITUTIONS = _words(
    "Bundestag Bundestages Bundestags Bundesrat Bundesrates Bundesrats Bundesverfassungsgericht "
    "Bundesverfassungsgerichts Bundesgerichtshof Bundesgerichtshofs Bundesnachrichtendienst "
    "Bundesnachrichtendienstes Bundeskartellamt Bundeskriminalamt Bundesamt Bundesamtes Bundesbank "
    "Bundesärztekammer Umweltbundesamt Verfassungsschutz CDU CSU SPD FDP AfD NPD ÖVP SPÖ FPÖ SVP "
    "Grünen Linkspartei UNO NATO Nato EU UN Uefa UEFA Fifa FIFA DFB ARD ZDF EZB IWF OECD ADAC"
)
# Abbreviations: 2-5 capitals (a lower-case letter or digit may follow the first: "UdSSR", "DT64").
ACRONYM = re.compile(r"[A-ZÄÖÜ][A-ZÄÖÜa-z0-9]?[A-ZÄÖÜ0-9]{0,3}[A-ZÄÖÜ]")
PLACE_ACRONYMS = frozenset({"USA", "BRD", "DDR", "UdSSR", "NRW", "UK", "VAE"})
# Units, currencies, numerals and the like, which are no organisation.
NOT_ACRONYMS = _words(
    "ISBN ISSN TV EUR USD CHF GBP KB MB GB TB PS KW MW KM II III IV VI VII VIII IX XI XII XIV XV XVI "
    "CD DVD PC SMS PDF HTML URL OK DNA DNS HIV AIDS CO LED LCD USB MP GPS IT PR FAQ DJ HD AM PM BA MA "
    "NS SS ABC WM EM KO RT IC ICE EC EN RE RB IR CNL TGV ZOB LKW PKW KFZ POL TOP NEU UND DER DIE DAS "
    "FB AKW BIP GmbH AG SE KG OHG"
)
PLACE_CUES = frozenset(
    {"in", "aus", "nach", "bei", "von", "im", "nahe", "zwischen", "über", "durch", "gegen"}
)


def _is_capitalised(text: str) -> bool:
    return len(text) > 1 and text[0].isupper() and any(c.isalpha() for c in text[1:])


def _name_classes(doc: Doc, text: str) -> set[str]:
    """The gazetteer classes of a word, read from the norm table baked into the model's vocab."""
    lookups = doc.vocab.lookups
    if not lookups.has_table("lexeme_norm"):
        return set()
    norm = lookups.get_table("lexeme_norm").get(text)
    if not isinstance(norm, str) or not norm.startswith("__"):
        return set()
    return set(norm.strip("_").split("+"))


def _is_place(doc: Doc, text: str) -> bool:
    """A listed place, also in the genitive ("Frankreichs")."""
    if text in COMMON_NOUNS:
        return False
    if "location" in _name_classes(doc, text):
        return True
    return text.endswith("s") and _name_classes(doc, text[:-1]) == {"location"}


def _is_first_name(doc: Doc, text: str) -> bool:
    if text in COMMON_NOUNS:
        return False
    return text in GERMAN_FIRST_NAMES or "first_name" in _name_classes(doc, text)


def _name_like(doc: Doc, text: str, first: bool) -> bool:
    """A capitalised token that may be part of a person's name (a place only after the first word)."""
    lower = text.lower()
    return (
        _is_capitalised(text)
        and text.replace("-", "").isalpha()
        and lower not in NOT_NAMES
        and text not in COMMON_NOUNS
        and not lower.endswith(NOUN_ENDINGS)
        and not text.isupper()
        and not _is_role(text)
        and not (first and _is_place(doc, text))
    )


def _particles(doc: Doc, i: int) -> int:
    """How many name particles start at ``i`` ("von" 1, "von der" 2, else 0)."""
    if i >= len(doc) or doc[i].text not in NAME_PARTICLES:
        return 0
    return 2 if i + 1 < len(doc) and doc[i + 1].text in INNER_PARTICLES else 1


def _name_after(doc: Doc, start: int, max_tokens: int = 4) -> int:
    """End of a person name beginning at ``start`` (== start when there is none)."""
    end = start
    while end < len(doc) and end - start < max_tokens:
        text = doc[end].text
        skip = _particles(doc, end) if end > start else 0
        if _name_like(doc, text, first=end == start):
            end += 1
        elif end > start and re.fullmatch(r"[A-Z]\.", text) and end + 1 < len(doc):
            end += 1  # a middle initial ("Clarence E. Case")
        elif skip and end + skip < len(doc) and _name_like(doc, doc[end + skip].text, first=False):
            end += skip + 1
        else:
            break
    while end > start and re.fullmatch(r"[A-Z]\.", doc[end - 1].text):
        end -= 1
    return end


def _in_capitalised_run(doc: Doc, i: int) -> bool:
    """Whether a capitalised word follows token ``i``, or precedes it inside the sentence."""
    after = i + 1 < len(doc) and doc[i + 1].text[:1].isupper()
    before = i > 1 and doc[i - 1].text[:1].isupper() and doc[i - 2].text not in {".", "!", "?", ":", '"'}
    return after or before


def _is_role(text: str) -> bool:
    lower = text.lower()
    return lower in TITLES or (text[:1].isupper() and lower.endswith(ROLE_HEADS))


def role_person(doc: Doc) -> Iterator[Proposal]:
    """ "Bundeskanzler Friedrich Merz", "Frau Schmidt", "Trainer Karsten Baumann" → person."""
    for i in range(len(doc) - 1):
        if _is_role(doc[i].text):
            end = _name_after(doc, i + 1)
            if end > i + 1:
                yield i + 1, end, "PER"


def first_name_person(doc: Doc) -> Iterator[Proposal]:
    """ "Torsten Frings", "Ivar Böhling" → person: a first name and a surname-like word after it."""
    for i in range(len(doc) - 1):
        text = doc[i].text
        if i > 0 and doc[i - 1].text[:1].isupper() and not _is_role(doc[i - 1].text):
            continue  # inside a longer capitalised run: not where a name starts
        if not _is_capitalised(text) or text.lower() in NOT_NAMES or not _is_first_name(doc, text):
            continue
        end = _name_after(doc, i + 1, max_tokens=3)
        if end > i + 1:
            yield i, end, "PER"


def legal_form_org(doc: Doc) -> Iterator[Proposal]:
    """ "Hamburger Hafen und Logistik AG", "Müller GmbH" → org (up to four capitalised words before)."""
    for i in range(1, len(doc)):
        if doc[i].text not in LEGAL_FORMS:
            continue
        start = i
        while start > 0 and i - start < 4:
            previous = doc[start - 1].text
            if (
                _is_capitalised(previous)
                or previous == "&"
                or (previous in {"und", "für"} and start - 1 < i - 1)
            ):
                start -= 1
            else:
                break
        while start < i and (not _is_capitalised(doc[start].text) or doc[start].text.lower() in NOT_NAMES):
            start += 1
        if start < i:
            yield start, i + 1, "ORG"


def club_org(doc: Doc) -> Iterator[Proposal]:
    """ "VfB Stuttgart", "1. FC Köln", "FC Bayern München" → org."""
    for i in range(len(doc) - 1):
        if doc[i].text not in CLUB_PREFIXES:
            continue
        end = i + 1
        while end < len(doc) and end - i <= 3 and (_is_capitalised(doc[end].text) or doc[end].text.isdigit()):
            end += 1
        if end > i + 1:
            start = i - 1 if i > 0 and re.fullmatch(r"\d\.", doc[i - 1].text) else i
            yield start, end, "ORG"


def institution_org(doc: Doc) -> Iterator[Proposal]:
    """Named institutions and parties ("Bundestag", "SPD", "Linkspartei") → org."""
    for i, token in enumerate(doc):
        if token.text in INSTITUTIONS:
            yield i, i + 1, "ORG"


def place_location(doc: Doc) -> Iterator[Proposal]:
    """ "in Riedlingen", "aus Frankfurt" → location, when the word is a listed place name.

    Not when a capitalised word follows (part of a longer name: "San Remo", "Wayne Rooney"), nor
    after "von" that follows a capitalised word (a name particle: "Ole von Beust").
    """
    for i in range(1, len(doc)):
        cue = doc[i - 1].text.lower()
        if cue not in PLACE_CUES or not _is_capitalised(doc[i].text) or not _is_place(doc, doc[i].text):
            continue
        if i + 1 < len(doc) and doc[i + 1].text[:1].isupper():
            continue
        if cue == "von" and i > 1 and doc[i - 2].text[:1].isupper():
            continue
        yield i, i + 1, "LOC"


def acronym_org(doc: Doc) -> Iterator[Proposal]:
    """Capitalised abbreviations ("ADAC", "CNN", "UMP") → org; known country ones → location."""
    for i, token in enumerate(doc):
        text = token.text
        if not ACRONYM.fullmatch(text) or text in NOT_ACRONYMS:
            continue
        if any(doc[j].text.isupper() and len(doc[j]) > 1 for j in (i - 1, i + 1) if 0 <= j < len(doc)):
            continue  # shouted text ("STAU AUF DER A9"), not an abbreviation
        if _in_capitalised_run(doc, i):
            continue  # part of a longer name ("ADAC GT Masters", "PKN Orlen")
        yield i, i + 1, ("LOC" if text in PLACE_ACRONYMS else "ORG")


# Nouns that introduce a quoted title of a work ("der Film „Das Boot“").
WORK_NOUNS = _word_tuple(
    "film buch roman album single song lied serie sendung titel oper stück theaterstück musical "
    "gedicht werk spiel show ausstellung hit erzählung kolumne reihe"
)
OPENING_QUOTES = frozenset({'"', "„", "“", "»", "«", "\u201a", "'"})
CLOSING_QUOTES = frozenset({'"', "“", "”", "«", "»", "\u2018", "'"})


def quoted_work_misc(doc: Doc) -> Iterator[Proposal]:
    """A quoted title after a work noun ("im Film „Das Boot“", "das Album " Blue "") → misc."""
    for i in range(1, len(doc) - 2):
        if doc[i].text not in OPENING_QUOTES or not doc[i - 1].text.lower().endswith(WORK_NOUNS):
            continue
        end = i + 1
        while end < len(doc) and end - i <= 8 and doc[end].text not in CLOSING_QUOTES:
            end += 1
        if (
            end < len(doc)
            and doc[end].text in CLOSING_QUOTES
            and end > i + 1
            and doc[i + 1].text[:1].isupper()
        ):
            yield i + 1, end, "OTH"


RULES: dict[str, Callable[[Doc], Iterable[Proposal]]] = {
    "role_person": role_person,
    "first_name_person": first_name_person,
    "legal_form_org": legal_form_org,
    "club_org": club_org,
    "institution_org": institution_org,
    "place_location": place_location,
    "acronym_org": acronym_org,
    "quoted_work_misc": quoted_work_misc,
}


class GermanNameRules:
    """Adds rule-found entities where the statistical NER found none; never overrides its spans.

    One exception, ``complete_persons``: a rule's person name may absorb person spans of the model
    that lie wholly inside it ("Trainer Karsten Baumann" where the model found only "Baumann"), so
    the type stays the model's and only the name gets its first name back.
    """

    def __init__(self, rules: Sequence[str], complete_persons: bool = True) -> None:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError(f"unknown German name rules {unknown}; known: {sorted(RULES)}")
        self.rules = tuple(rules)
        self.complete_persons = complete_persons

    def _absorbable(self, doc: Doc, owner: list[int], start: int, end: int, label: str) -> set[int]:
        """Indices of the model's person spans a rule's person span may absorb (empty: none, or clash)."""
        inside = {owner[i] for i in range(start, end) if owner[i] >= 0}
        if not self.complete_persons or label not in ABSORB or not inside or -2 in inside:
            return set()
        ents = doc.ents
        if all(ents[k].label_ == label and start <= ents[k].start and ents[k].end <= end for k in inside):
            return inside
        return set()

    def __call__(self, doc: Doc) -> Doc:
        owner = [-1] * len(doc)  # index of the model's entity on each token, -2 for a rule's
        for k, ent in enumerate(doc.ents):
            owner[ent.start : ent.end] = [k] * (ent.end - ent.start)
        added: list[Span] = []
        absorbed: set[int] = set()
        for name in self.rules:
            for start, end, label in RULES[name](doc):
                free = all(o == -1 for o in owner[start:end])
                found = set() if free else self._absorbable(doc, owner, start, end, label)
                if not free and not found:
                    continue
                absorbed |= found
                owner[start:end] = [-2] * (end - start)
                added.append(Span(doc, start, end, label=label))
        if added:
            kept = [ent for k, ent in enumerate(doc.ents) if k not in absorbed]
            doc.ents = sorted([*kept, *added], key=lambda span: span.start)
        return doc


@Language.factory(FACTORY, default_config={"rules": list(RULES), "complete_persons": True})
def make_german_rules(nlp: Language, name: str, rules: list[str], complete_persons: bool) -> GermanNameRules:
    return GermanNameRules(rules, complete_persons)


def add_rules(nlp: Any, rules: Sequence[str] | None = None, complete_persons: bool = True) -> Any:
    """Put the rules last (once), after ``ner`` or the vote; ``rules`` picks a subset, by default all."""
    if FACTORY not in nlp.pipe_names:
        config = {"rules": list(rules if rules is not None else RULES), "complete_persons": complete_persons}
        nlp.add_pipe(FACTORY, name=FACTORY, last=True, config=config)  # after "ner" or the vote
    return nlp
