"""The enrich stage: an article in; language, entities, topics and story out.

``process_batch`` is what the stream loop calls: spaCy runs once per language over the whole batch
(``nlp.pipe``) and the sentence encoder once over all sentences of the batch, which is where the time
goes; the per-article steps (alias table, story clustering) are cheap lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from enrich.aliases import AliasTable
from enrich.entities import EntityRecognizer, ModelUnavailable
from enrich.language import LanguageDetector, LanguageGuess
from enrich.stories import StoryClusterer
from enrich.topics import Document, Taxonomy, TopicClassifier, Vector
from newsflow.metrics import ENRICHMENT_GAPS
from newsflow.schemas import Article, EnrichedArticle, Entity, TopicScore
from newsflow.settings import EnrichSettings, SpacySettings

MAX_NER_CHARS = 100_000
STORY_LABELS = frozenset({"person", "org", "location"})  # what two reports of one story both name


class EnrichStage:
    name = "enrich"
    input_model = Article

    def __init__(
        self,
        detector: LanguageDetector,
        recognizer: EntityRecognizer,
        topics: TopicClassifier | None = None,
        aliases: AliasTable | None = None,
        stories: StoryClusterer | None = None,
        batch_size: int = 32,
    ) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.topics = topics
        self.aliases = aliases
        self.stories = stories
        self.batch_size = batch_size

    def process(self, message: Article) -> EnrichedArticle:
        (result,) = self.process_batch([message])
        if isinstance(result, BaseException):
            raise result
        return result

    def process_batch(self, messages: Sequence[Article]) -> list[EnrichedArticle | BaseException]:
        guesses = [self.detector.detect(f"{m.title}\n{m.body}", hint=m.language) for m in messages]
        notes: list[list[str]] = [[] for _ in messages]
        entities = self._entities(messages, guesses, notes)
        topics: list[tuple[TopicScore, ...]] = [() for _ in messages]
        vectors: list[Vector | None] = [None for _ in messages]
        if self.topics is not None:
            docs = [Document(m.title, m.body, g.language) for m, g in zip(messages, guesses, strict=True)]
            topics, vectors = self.topics.classify_with_vectors(docs)
        results: list[EnrichedArticle | BaseException] = []
        for index, message in enumerate(messages):
            try:
                results.append(
                    self._finish(
                        message, guesses[index], entities[index], topics[index], vectors[index], notes[index]
                    )
                )
            except Exception as exc:  # noqa: BLE001 - one article's failure is that article's fate, not the batch's
                results.append(exc)
        return results

    def _entities(
        self, messages: Sequence[Article], guesses: Sequence[LanguageGuess], notes: list[list[str]]
    ) -> list[tuple[Entity, ...]]:
        """One ``nlp.pipe`` run per language over the batch's articles in that language."""
        entities: list[tuple[Entity, ...]] = [() for _ in messages]
        by_language: dict[str, list[int]] = {}
        for index, guess in enumerate(guesses):
            if not guess.supported:
                notes[index].append(f"unsupported_language:{guess.language}")
            elif not self.recognizer.available(guess.language):
                notes[index].append(f"no_ner_model:{guess.language}")
            else:
                by_language.setdefault(guess.language, []).append(index)
        for language, indices in by_language.items():
            texts = [
                (f"{messages[i].title}\n\n{messages[i].body}"[:MAX_NER_CHARS], len(messages[i].title))
                for i in indices
            ]
            try:
                found = self.recognizer.recognise(texts, language, batch_size=self.batch_size)
            except ModelUnavailable:
                for i in indices:
                    notes[i].append(f"ner_model_failed:{language}")
                continue
            for i, article_entities in zip(indices, found, strict=True):
                entities[i] = article_entities
        return entities

    def _finish(
        self,
        message: Article,
        guess: LanguageGuess,
        entities: tuple[Entity, ...],
        topics: tuple[TopicScore, ...],
        vector: Vector | None,
        notes: list[str],
    ) -> EnrichedArticle:
        if self.aliases is not None and entities:
            entities = self.aliases.normalise(entities, guess.language)
        story_id = None
        if self.stories is not None:
            when = message.published_at or message.fetched_at
            names = [e.name for e in sorted(entities, key=lambda e: -e.mentions) if e.label in STORY_LABELS]
            story_id = self.stories.assign(
                message.article_id, f"{message.title}\n{message.body}", when, vector, names
            )
        for note in notes:
            ENRICHMENT_GAPS.labels(self.name, note.split(":")[0]).inc()
        return EnrichedArticle(
            article=message,
            language=guess.language,
            language_confidence=round(guess.confidence, 4),
            entities=entities,
            topics=topics,
            story_id=story_id,
            notes=tuple(notes),
            enriched_at=datetime.now(UTC),
        )


def build_stage(enrich: EnrichSettings, spacy: SpacySettings, persistent: bool = True) -> EnrichStage:
    """The stage as configured; ``persistent=False`` keeps alias table and stories in memory."""
    state = enrich.state_dir if persistent else None
    topics = (
        TopicClassifier(Taxonomy.load(enrich.topics_file), threshold=enrich.topic_threshold)
        if enrich.topics
        else None
    )
    return EnrichStage(
        LanguageDetector(enrich.languages, enrich.hint_weight),
        EntityRecognizer({"en": spacy.model_en, "de": spacy.model_de}, spacy.voters),
        topics=topics,
        aliases=AliasTable(state / "aliases.sqlite" if state else None, enrich.english_place_names),
        stories=StoryClusterer(
            state / "stories.sqlite" if state else None,
            window=timedelta(hours=enrich.story_window_h),
            threshold=enrich.story_threshold,
            semantic_threshold=enrich.story_semantic_threshold if enrich.story_rewrites else None,
            min_shared_entities=enrich.story_min_shared_entities,
        ),
        batch_size=spacy.batch_size,
    )
