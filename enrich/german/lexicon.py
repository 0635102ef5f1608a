"""Word clusters and word frequency as features of the German NER model.

With ~2,200 in-domain training sentences the model cannot learn that an unseen capitalised word is a
surname or a town: in German every noun is capitalised. Brown clusters computed on a large German
corpus can: "Merkel", "Heidegger", "Saakaschwili" and "Schmidt" share one cluster, "Franken" and
"Gulden" another. ``spacy-lookups-data`` (MIT, ExplosionAI) carries such clusters and log
probabilities for a million German words (the vocab data of spaCy's v2 German models). They are the
classic NER word-class feature (Ratinov & Roth 2009): each word's cluster path is cut to several
prefix lengths, and each prefix and a frequency bucket is hash-embedded like spaCy's own lexical
attributes.

The most frequent ``MAX_WORDS`` entries are copied into the pipeline's vocab lookups (table
``TABLE``) at training time, so the shipped model needs no extra package at run time. The embedding
layer ``newsflow.LexiconHashEmbed.v2`` is spaCy's ``MultiHashEmbed`` with these extra columns (and
USE's contextual features, ``context.py``); spaCy finds it through the ``spacy_architectures`` entry
point of the newsflow package.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from spacy.util import registry

from enrich.german.context import FEATURE_DIM, context_feature_layer

TABLE = "newsflow_word_classes"
MAX_WORDS = 400_000
# Cluster path prefix lengths, as in Ratinov & Roth (2009); 0 means the whole path.
PREFIX_LENGTHS = (4, 6, 10, 0)
_PROB_SHIFT = 32


def encode(cluster: int, log_prob: float) -> int:
    """One table value: the cluster id (a bit path behind a leading 1) and a log-frequency bucket."""
    bucket = int(min(max(round(-log_prob), 1), 25))
    return (bucket << _PROB_SHIFT) | cluster


def word_classes(max_words: int = MAX_WORDS) -> dict[str, int]:
    """The ``max_words`` most frequent words of spacy-lookups-data's German tables (training time only)."""
    from importlib.resources import files

    data = files("spacy_lookups_data") / "data"
    clusters = json.loads(gzip.decompress((data / "de_lexeme_cluster.json.gz").read_bytes()))
    probs = json.loads(gzip.decompress((data / "de_lexeme_prob.json.gz").read_bytes()))
    ranked = sorted(probs, key=lambda word: -probs[word])[:max_words]
    return {word: encode(int(clusters.get(word, 0)), probs[word]) for word in ranked}


def add_word_classes(nlp: Any, classes: dict[str, int]) -> Any:
    """Store the classes in ``nlp``'s vocab lookups (saved with the pipeline)."""
    lookups = nlp.vocab.lookups
    table = lookups.get_table(TABLE) if lookups.has_table(TABLE) else lookups.add_table(TABLE)
    for word, value in classes.items():
        table[word] = value
    return nlp


def _feature_columns(value: int) -> list[int]:
    """The hashed columns for one table value: path prefixes, then the frequency bucket; 0 = unknown."""
    cluster = value & ((1 << _PROB_SHIFT) - 1)
    bucket = value >> _PROB_SHIFT
    if not cluster:
        return [0] * len(PREFIX_LENGTHS) + [bucket]
    depth = cluster.bit_length() - 1
    columns = []
    for length in PREFIX_LENGTHS:
        keep = depth if length == 0 else min(length, depth)
        columns.append(((cluster >> (depth - keep)) << 8) | keep)
    return [*columns, bucket]


def lookup(table: Any, text: str) -> int:
    """The table value of a word, trying its title-case and lower-case forms ("RIEDLINGEN", "Wenn")."""
    for form in (text, text.title(), text.lower()):
        value = table.get(form)
        if value is not None:
            return int(value)
    return 0


def _extract_forward(model: Any, docs: Sequence[Any], is_train: bool) -> tuple[list[Any], Callable[..., Any]]:
    columns = model.attrs["columns"]
    width = len(PREFIX_LENGTHS) + 1
    features = []
    cache: dict[str, list[int]] = {}
    for doc in docs:
        base = doc.to_array(columns).reshape((len(doc), -1)).astype("uint64")
        table = doc.vocab.lookups.get_table(TABLE, {})
        extra = np.empty((len(doc), width), dtype="uint64")
        for i, token in enumerate(doc):
            row = cache.get(token.text)
            if row is None:
                row = cache[token.text] = _feature_columns(lookup(table, token.text))
            extra[i] = row
        features.append(model.ops.asarray2i(np.hstack([base, extra]), dtype="uint64"))
    return features, lambda d_features: []


def lexicon_feature_extractor(columns: Sequence[str]) -> Any:
    """spaCy's FeatureExtractor plus the word-class columns of :func:`_feature_columns`."""
    from thinc.api import Model

    return Model("extract_lexicon_features", _extract_forward, attrs={"columns": list(columns)})


def lexicon_hash_embed(
    width: int,
    attrs: list[str],
    rows: list[int],
    class_rows: int,
    context_features: bool = True,
) -> Any:
    """``spacy.MultiHashEmbed.v2`` without static vectors, with one more hash table per word-class
    column (``class_rows`` each) and, with ``context_features``, a linear map of USE's contextual
    word features (``context.py``; they replaced static vectors, which added nothing next to them)."""
    from thinc.api import HashEmbed, Linear, Maxout, chain, concatenate, list2ragged, ragged2list, with_array

    all_rows = [*rows, *[class_rows] * (len(PREFIX_LENGTHS) + 1)]
    embeddings: list[Any] = [
        HashEmbed(width, n_rows, column=i, seed=8 + i, dropout=0.0) for i, n_rows in enumerate(all_rows)
    ]
    inputs: Any = chain(
        lexicon_feature_extractor(attrs),
        list2ragged(),
        with_array(concatenate(*embeddings)),
    )
    if context_features:
        inputs = concatenate(inputs, chain(context_feature_layer(), with_array(Linear(width, FEATURE_DIM))))
    concat_size = width * (len(embeddings) + context_features)
    max_out: Any = with_array(Maxout(width, concat_size, nP=3, dropout=0.0, normalize=True))
    return cast(Any, chain(inputs, max_out, ragged2list()))


registry.architectures.register("newsflow.LexiconHashEmbed.v2", func=lexicon_hash_embed)
