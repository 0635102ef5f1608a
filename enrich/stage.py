"""The enrich stage: an article in, the article with language and entities out."""

from __future__ import annotations

from datetime import UTC, datetime

from enrich.entities import EntityRecognizer, ModelUnavailable
from enrich.language import LanguageDetector
from newsflow.metrics import ENRICHMENT_GAPS
from newsflow.schemas import Article, EnrichedArticle, Entity

MAX_NER_CHARS = 100_000


class EnrichStage:
    name = "enrich"
    input_model = Article

    def __init__(self, detector: LanguageDetector, recognizer: EntityRecognizer) -> None:
        self.detector = detector
        self.recognizer = recognizer

    def process(self, message: Article) -> EnrichedArticle:
        guess = self.detector.detect(f"{message.title}\n{message.body}", hint=message.language)
        notes: list[str] = []
        entities: tuple[Entity, ...] = ()
        if not guess.supported:
            notes.append(f"unsupported_language:{guess.language}")
        elif not self.recognizer.available(guess.language):
            notes.append(f"no_ner_model:{guess.language}")
        else:
            text = f"{message.title}\n\n{message.body}"[:MAX_NER_CHARS]
            try:
                (entities,) = self.recognizer.recognise([(text, len(message.title))], guess.language)
            except ModelUnavailable:
                notes.append(f"ner_model_failed:{guess.language}")
        for note in notes:
            ENRICHMENT_GAPS.labels(self.name, note.split(":")[0]).inc()
        return EnrichedArticle(
            article=message,
            language=guess.language,
            language_confidence=round(guess.confidence, 4),
            entities=entities,
            notes=tuple(notes),
            enriched_at=datetime.now(UTC),
        )
