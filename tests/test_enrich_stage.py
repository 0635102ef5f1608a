"""The enrich stage on batches, ``newsflow analyze`` on the seed article, and the stage through Kafka + ES."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from enrich.commands import read_article
from enrich.stage import EnrichStage, build_stage
from newsflow.settings import EnrichSettings, SpacySettings

SEED = "seed/000_72ee96cb111d85f2.txt"
SEED_PEOPLE = {
    "Antony Blinken",
    "Alejandro Mayorkas",
    "Liz Sherwood-Randall",
    "Andrés Manuel López Obrador",
    "Joe Biden",
    "Donald Trump",
}
SEED_COUNTRIES = {"Mexico", "United States", "Guatemala", "Venezuela", "Haiti", "Cuba", "Ecuador"}
FRENCH = (
    "Le gouvernement présente son projet de loi\n"
    "Le gouvernement a présenté jeudi son projet de loi sur le budget. Les députés en débattront la semaine "
    "prochaine à l'Assemblée nationale."
)
DEMO_MIGRATION_PAGE = (
    Path(__file__).resolve().parents[1] / "newsflow/demo/site/articles/de-bundestag-migration.html"
)


@pytest.fixture(scope="module")
def stage() -> EnrichStage:
    return build_stage(EnrichSettings(), SpacySettings(), persistent=False)


def test_a_batch_gets_entities_topics_stories_and_per_article_notes(
    stage: EnrichStage, shared_data: Path, tmp_path: Path
):
    seed = read_article(shared_data / SEED)
    copy_file = tmp_path / "copy.txt"
    copy_file.write_text(
        "Mexico and USA report progress on migration\n" + seed.body.replace("Read also:", ""),
        encoding="utf-8",
    )
    french_file = tmp_path / "fr.txt"
    french_file.write_text(FRENCH, encoding="utf-8")
    articles = [seed, read_article(copy_file), read_article(french_file)]
    results = stage.process_batch(articles)
    assert not any(isinstance(r, BaseException) for r in results)
    enriched, copy, french = results
    assert not isinstance(enriched, BaseException) and not isinstance(copy, BaseException)
    assert not isinstance(french, BaseException)
    people = {e.name for e in enriched.entities if e.label == "person"}
    assert people >= SEED_PEOPLE
    assert {"migration", "politics"} <= {t.name for t in enriched.topics}
    assert copy.story_id == enriched.story_id
    assert french.story_id not in {None, enriched.story_id}
    assert french.entities == ()
    assert french.notes == ("unsupported_language:fr",)
    # one article on its own gets what it got in the batch
    alone = stage.process(articles[0])
    assert [(e.name, e.mentions) for e in alone.entities] == [(e.name, e.mentions) for e in enriched.entities]
    assert alone.topics == enriched.topics


def test_one_failing_article_does_not_fail_the_batch(
    stage: EnrichStage, shared_data: Path, monkeypatch: pytest.MonkeyPatch
):
    seed = read_article(shared_data / SEED)
    broken = seed.model_copy(update={"article_id": "broken"})
    assert stage.stories is not None
    original = stage.stories.assign

    def assign(article_id: str, *args: Any) -> str:
        if article_id == "broken":
            raise RuntimeError("story store unavailable")
        return original(article_id, *args)

    monkeypatch.setattr(stage.stories, "assign", assign)
    ok, failed = stage.process_batch([seed, broken])
    assert isinstance(failed, RuntimeError)
    assert not isinstance(ok, BaseException) and ok.entities


def test_analyze_command_on_the_seed_article(shared_data: Path):
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "analyze", str(shared_data / SEED), "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(run.stdout)
    assert report["language"] == "en"
    assert set(report["entities"]) == {"person", "org", "location", "misc"}
    assert set(report["entities"]["person"]) >= SEED_PEOPLE
    assert set(report["entities"]["location"]) >= SEED_COUNTRIES
    # variants are merged into the canonical names, not listed beside them
    assert not {"Tony Blinken", "Biden", "López Obrador", "US", "USA"} & set(report["entities"]["person"])
    topics = {t["name"]: t for t in report["topics"]}
    assert {"migration", "politics"} <= set(topics)
    evidence = topics["migration"]["evidence"]
    assert any(e.startswith("terms: ") and "migrants" in e for e in evidence)
    assert any(e.startswith("sentence: ") for e in evidence)


def test_analyze_reads_html_pages_like_ingest_does():
    article = read_article(DEMO_MIGRATION_PAGE)
    assert article.title == "Bundestag streitet über schnellere Asylverfahren"
    assert "Cookies" not in article.body
    assert article.language == "de"


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_enriched_topics_and_stories_reach_elasticsearch(
    kafka_settings, es_settings, es_client, shared_data: Path, tmp_path: Path
):
    from index.search import SearchQuery, search
    from newsflow.kafka_io import ensure_topics, make_producer
    from newsflow.pipeline import TOPIC_ROLES, PipelineRunner, PipelineSettings
    from newsflow.settings import LoopSettings

    seed = read_article(shared_data / SEED)
    seed = seed.model_copy(update={"article_id": "seed-1", "published_at": datetime(2026, 11, 1, tzinfo=UTC)})
    copy = seed.model_copy(update={"article_id": "seed-2", "title": "Mexico promises to stem migration"})
    ensure_topics(kafka_settings, TOPIC_ROLES)
    producer = make_producer(kafka_settings)
    for article in (seed, copy):
        producer.send(
            kafka_settings.topic("articles"), key=article.key(), value=article.model_dump_json().encode()
        )
    producer.flush(timeout=30)
    producer.close()
    settings = PipelineSettings(
        kafka=kafka_settings,
        elasticsearch=es_settings,
        enrich=EnrichSettings(state_dir=tmp_path / "enrich"),
        loop=LoopSettings(batch_size=10, linger_s=0.2),
    )
    runner = PipelineRunner(settings, ("enrich", "index"))
    runner.run(threading.Event(), idle_exit_s=30.0)  # the index stage idles while enrich loads its models
    assert runner.errors == {}
    assert runner.stats["index"].total("ok") == 2, runner.stats["index"].as_dict()
    es_client.indices.refresh(index=es_settings.alias)
    docs = {
        d["_id"]: d["_source"]
        for d in es_client.mget(index=es_settings.alias, ids=["seed-1", "seed-2"])["docs"]
    }
    # the two partitions may deliver either copy first: the story is named after the first one
    assert docs["seed-1"]["story_id"] == docs["seed-2"]["story_id"] in {"seed-1", "seed-2"}
    assert {"migration", "politics"} <= set(docs["seed-1"]["topics"])
    assert docs["seed-1"]["topic_evidence"]["migration"]
    hits = search(es_client, es_settings.alias, SearchQuery(text="", topics=("migration",)))
    assert hits["total"] == 2
    assert (tmp_path / "enrich" / "aliases.sqlite").exists()
