"""A majority vote of German NER models trained alike with different seeds, as one spaCy pipeline.

With ~2,200 in-domain sentences one model's errors depend much on its random start (a point and
more of F1 from seed to seed); an entity that most of several such models find is far more often
right. :func:`assemble` puts the members' ``ner`` components (each with its own copy of its
``tok2vec``) into one pipeline: after each, ``newsflow_ner_stash`` moves its entities into
``doc.spans`` (a later ``ner`` would otherwise treat them as given), and ``newsflow_ner_vote`` keeps
the spans at least ``min_votes`` members found. With a strict majority two kept spans cannot
overlap: each member votes for at most one of them. The members share USE's context features
(``context.py`` computes them once per document).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from enrich.german.context import drop_cached_features

STASH = "newsflow_ner_stash"
VOTE = "newsflow_ner_vote"


def majority(members: int) -> int:
    """The fewest votes that are more than half of ``members``."""
    return members // 2 + 1


class EntityStash:
    """Moves ``doc.ents`` into ``doc.spans[key]`` and clears them for the next member."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, doc: Doc) -> Doc:
        doc.spans[self.key] = list(doc.ents)
        doc.ents = ()
        return doc


class MajorityVote:
    """Sets ``doc.ents`` to the spans (same tokens, same label) at least ``min_votes`` members found."""

    def __init__(self, keys: Sequence[str], min_votes: int) -> None:
        if min_votes < majority(len(keys)):
            raise ValueError(f"min_votes must be a strict majority of {len(keys)} members, not {min_votes}")
        self.keys = list(keys)
        self.min_votes = min_votes

    def __call__(self, doc: Doc) -> Doc:
        votes: Counter[tuple[int, int, str]] = Counter()
        for key in self.keys:
            votes.update((span.start, span.end, span.label_) for span in doc.spans.get(key, ()))
            doc.spans.pop(key, None)
        kept = sorted(span for span, n in votes.items() if n >= self.min_votes)
        doc.ents = [Span(doc, start, end, label=label) for start, end, label in kept]
        drop_cached_features(doc)
        return doc


@Language.factory(STASH, default_config={"key": ""})
def make_stash(nlp: Language, name: str, key: str) -> EntityStash:
    return EntityStash(key or name)


@Language.factory(VOTE, default_config={"keys": [], "min_votes": 2})
def make_vote(nlp: Language, name: str, keys: list[str], min_votes: int) -> MajorityVote:
    return MajorityVote(keys, min_votes)


def assemble(members: Sequence[Path], out_dir: Path) -> Path:
    """One pipeline voting over the trained pipelines in ``members`` (each ``tok2vec`` + ``ner``)."""
    import spacy

    if len(members) < 3 or len(members) % 2 == 0:
        raise ValueError(f"a majority vote needs an odd number (≥ 3) of members, not {len(members)}")
    nlp = spacy.load(members[0])
    keys = []
    for i, path in enumerate(members):
        member = nlp if i == 0 else spacy.load(path)
        member.replace_listeners("tok2vec", "ner", ["model.tok2vec"])
        name = f"ner_{i}"
        if i == 0:
            nlp.remove_pipe("tok2vec")
            nlp.rename_pipe("ner", name)
        else:
            nlp.add_pipe("ner", name=name, source=member)
        key = f"newsflow_ner_{i}"
        nlp.add_pipe(STASH, name=f"stash_{i}", config={"key": key})
        keys.append(key)
    nlp.add_pipe(VOTE, config={"keys": keys, "min_votes": majority(len(members))})
    nlp.to_disk(out_dir)
    return out_dir


def keep_voters(nlp: Any, voters: int) -> Any:
    """Let only the first ``voters`` members of a vote run (faster, less accurate); a majority of them
    still decides. A plain pipeline is returned as it is."""
    if VOTE not in nlp.pipe_names:
        return nlp
    vote = nlp.get_pipe(VOTE)
    if voters % 2 == 0 or voters > len(vote.keys):
        raise ValueError(f"voters must be odd and at most {len(vote.keys)}, not {voters}")
    for i in range(voters, len(vote.keys)):
        nlp.remove_pipe(f"ner_{i}")
        nlp.remove_pipe(f"stash_{i}")
    vote.keys = vote.keys[:voters]
    vote.min_votes = majority(voters)
    return nlp


def member_count(nlp: Any) -> int:
    """How many models vote in ``nlp`` (1 for a plain pipeline)."""
    return len(nlp.get_pipe(VOTE).keys) if VOTE in nlp.pipe_names else 1
