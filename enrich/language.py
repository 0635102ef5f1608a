"""Offline language identification (py3langid), with the feed's language as a weak prior."""

from __future__ import annotations

from dataclasses import dataclass

from py3langid.langid import MODEL_FILE, LanguageIdentifier

_SAMPLE_CHARS = 3000
_FOREIGN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    confidence: float
    supported: bool


class LanguageDetector:
    """Detects among all of py3langid's languages, then decides among the configured ones.

    Restricting the model outright would force a French article into "de" or "en"; instead an
    article is only called unsupported when another language wins clearly.
    """

    def __init__(self, languages: tuple[str, ...], hint_weight: float = 0.15) -> None:
        self.languages = languages
        self.hint_weight = hint_weight
        self._all = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(self, text: str, hint: str | None = None) -> LanguageGuess:
        sample = text[:_SAMPLE_CHARS]
        if not sample.strip():
            return LanguageGuess(hint or "und", 0.0, hint in self.languages)
        ranked: list[tuple[str, float]] = self._all.rank(sample)
        top, top_p = ranked[0]
        if top not in self.languages and top_p >= _FOREIGN_CONFIDENCE:
            return LanguageGuess(top, float(top_p), False)
        scores = {lang: float(p) for lang, p in ranked if lang in self.languages}
        total = sum(scores.values()) or 1.0
        posterior = {
            lang: (1 - self.hint_weight) * p / total + (self.hint_weight if lang == hint else 0.0)
            for lang, p in scores.items()
        }
        if not posterior:
            return LanguageGuess(top, float(top_p), False)
        best = max(posterior, key=lambda lang: posterior[lang])
        return LanguageGuess(best, min(1.0, posterior[best]), True)
