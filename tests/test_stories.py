"""Story clustering: agency copies and rewrites share a story; other stories, old copies and restarts
behave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from enrich.stories import StoryClusterer, signature, similarity

AGENCY = (
    "Storm Babet: rivers burst their banks as rain continues\n"
    "Rivers burst their banks in several towns on Friday as heavy rain from Storm Babet continued to fall "
    "across the north of the country. The environment agency issued three severe flood warnings, meaning "
    "danger to life, and hundreds of homes were evacuated overnight. Rail services between the two largest "
    "cities were suspended after a landslide blocked the line near the river crossing. Police urged drivers "
    "not to travel unless their journey was essential. The weather service said up to 100 millimetres of "
    "rain could fall on high ground before the storm moves east on Saturday. Schools in the worst affected "
    "areas will stay closed, the regional council said."
)
# The same agency text as another outlet runs it: new headline, a sentence cut, a paragraph added.
COPY = (
    "Homes evacuated as Storm Babet floods northern towns\n"
    "Rivers burst their banks in several towns on Friday as heavy rain from Storm Babet continued to fall "
    "across the north of the country. The environment agency issued three severe flood warnings, meaning "
    "danger to life, and hundreds of homes were evacuated overnight. Rail services between the two largest "
    "cities were suspended after a landslide blocked the line near the river crossing. The weather service "
    "said up to 100 millimetres of rain could fall on high ground before the storm moves east on Saturday. "
    "Local residents told our reporter that the water rose within an hour. Schools in the worst affected "
    "areas will stay closed, the regional council said."
)
OTHER = (
    "Storm Babet: insurers expect claims to rise\n"
    "Insurers expect thousands of claims after Storm Babet, an industry association said on Monday. "
    "Damage to homes and cars could cost more than 500 million pounds, according to first estimates. "
    "Customers were advised to photograph damage before starting repairs and to keep receipts."
)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_signature_similarity_tracks_shared_text():
    agency, copy, other = signature(AGENCY), signature(COPY), signature(OTHER)
    assert agency is not None and copy is not None and other is not None
    assert similarity(agency, agency) == 1.0
    assert similarity(agency, copy) >= 0.5
    assert similarity(agency, other) < 0.1
    assert signature("   ") is None


def test_agency_copies_share_a_story_and_other_stories_do_not(tmp_path: Path):
    stories = StoryClusterer(tmp_path / "stories.sqlite")
    first = stories.assign("a1", AGENCY, NOW)
    assert first == "a1"
    assert stories.assign("a2", COPY, NOW + timedelta(hours=2)) == first
    assert stories.assign("a3", OTHER, NOW + timedelta(hours=3)) == "a3"
    # re-delivery of an article keeps its story
    assert stories.assign("a2", COPY, NOW + timedelta(hours=2)) == first


def test_copies_outside_the_window_start_a_new_story():
    stories = StoryClusterer(None, window=timedelta(hours=24))
    stories.assign("old", AGENCY, NOW)
    assert stories.assign("new", COPY, NOW + timedelta(days=3)) == "new"


def test_stories_survive_a_restart(tmp_path: Path):
    path = tmp_path / "stories.sqlite"
    stories = StoryClusterer(path)
    stories.assign("a1", AGENCY, NOW)
    stories.close()
    reopened = StoryClusterer(path)
    assert reopened.assign("a2", COPY, NOW + timedelta(hours=1)) == "a1"


# One event told three ways (two outlets' own words, one German report), and two traps: another
# story naming the same ferry line and port, and another harbour fire naming other places and people.
FIRE = (
    "Fire on Rostock ferry terminal forces evacuation of 400 passengers\n"
    "A fire broke out at the ferry terminal in Rostock on Tuesday morning, forcing the evacuation of "
    "about 400 passengers from a Baltic Ferries ship waiting to depart for Trelleborg. Fire chief "
    "Katrin Lemke said the blaze started in a storage hall next to the passenger bridge shortly after 7"
    " a.m. Nobody was injured, but two firefighters were treated for smoke inhalation. Baltic Ferries "
    "cancelled three departures and said passengers would be rebooked on evening sailings. The cause of"
    " the fire is not yet known; police have opened an investigation."
)
FIRE_REWRITTEN = (
    "Passengers evacuated as blaze hits Rostock port\n"
    "Around 400 people had to leave a ferry in Rostock on Tuesday after flames spread through a "
    "warehouse beside the boarding bridge. The Baltic Ferries vessel had been due to sail to "
    "Trelleborg. According to Katrin Lemke, head of the city's fire service, the alarm was raised just "
    "after seven. Two firefighters needed treatment after breathing in smoke, but no passengers were "
    "hurt. The operator scrapped three crossings and promised to put travellers on later boats. "
    "Investigators are still trying to establish what caused the fire."
)
FIRE_GERMAN = (
    "Brand am Fährterminal Rostock: 400 Passagiere evakuiert\n"
    "Am Rostocker Fährterminal ist am Dienstagmorgen ein Feuer ausgebrochen. Rund 400 Passagiere "
    "mussten ein Schiff der Reederei Baltic Ferries verlassen, das nach Trelleborg auslaufen sollte. "
    "Nach Angaben von Feuerwehrchefin Katrin Lemke brach der Brand kurz nach 7 Uhr in einer Lagerhalle "
    "neben der Gangway aus. Verletzt wurde niemand, zwei Feuerwehrleute erlitten eine Rauchvergiftung. "
    "Baltic Ferries strich drei Abfahrten. Die Polizei ermittelt zur Brandursache."
)
SAME_NAMES_OTHER_STORY = (
    "Baltic Ferries reports record summer as Rostock traffic grows\n"
    "Baltic Ferries carried more passengers between Rostock and Trelleborg this summer than ever "
    "before, the company said on Tuesday. Chief executive Jonas Berg said bookings rose by 12 percent "
    "compared with last year, helped by new cabins and lower fuel costs. The operator plans to add a "
    "fourth ship on the route next spring and to hire 80 staff in Rostock. Analysts said the results "
    "were better than expected, and the company's shares rose 4 percent in Stockholm."
)
SAME_KIND_OTHER_STORY = (
    "Fire at Kiel harbour warehouse, ferry departures delayed\n"
    "A fire broke out in a warehouse at Kiel harbour on Tuesday morning, delaying two ferry departures "
    "to Oslo. Fire chief Martin Vogt said the blaze started in a hall used to store pallets shortly "
    "after 6 a.m. Nobody was injured. The ferry operator Nordlink said passengers had waited on board "
    "until the smoke cleared. Police are investigating the cause."
)


def _unit(values: list[float]) -> npt.NDArray[np.float32]:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_rewrite_joins_only_with_shared_entities_and_a_close_embedding(tmp_path: Path):
    path = tmp_path / "stories.sqlite"
    stories = StoryClusterer(path, semantic_threshold=0.7, min_shared_entities=2)
    names = ["Rostock", "Baltic Ferries", "Katrin Lemke"]
    first = stories.assign("a1", FIRE, NOW, _unit([1, 0, 0]), names)
    # close embedding, two shared names (case and order do not matter): the same story
    assert stories.assign("a2", FIRE_REWRITTEN, NOW, _unit([1, 0.3, 0]), ["katrin lemke", "Rostock"]) == first
    # close embedding, one shared name; two shared names, far embedding: other stories
    assert stories.assign("a3", SAME_KIND_OTHER_STORY, NOW, _unit([1, 0.2, 0]), ["Rostock", "Kiel"]) == "a3"
    assert stories.assign("a4", SAME_NAMES_OTHER_STORY, NOW, _unit([0.5, 1, 0]), names) == "a4"
    # no vector (topics off) or beyond the window: no rewrite test
    assert stories.assign("a5", FIRE_GERMAN, NOW, None, names) == "a5"
    late = NOW + timedelta(hours=80)
    assert stories.assign("a6", FIRE_GERMAN, late, _unit([1, 0, 0]), names) == "a6"
    stories.close()
    reopened = StoryClusterer(path)  # vectors and names persist
    update = "Terminal reopens\nDepartures resumed in the evening after the fire brigade left the site."
    assert reopened.assign("a7", update, NOW, _unit([1, 0.1, 0]), names) == first
    assert (
        StoryClusterer(None, semantic_threshold=None).assign("x", FIRE, NOW, _unit([1, 0, 0]), names) == "x"
    )


def test_rewrites_and_translations_of_one_story_share_it_through_the_enrich_stage():
    from enrich.stage import build_stage
    from newsflow.schemas import Article
    from newsflow.settings import EnrichSettings, SpacySettings

    stage = build_stage(EnrichSettings(), SpacySettings(), persistent=False)
    texts = {
        "fire": (FIRE, "en"),
        "rewritten": (FIRE_REWRITTEN, "en"),
        "german": (FIRE_GERMAN, "de"),
        "earnings": (SAME_NAMES_OTHER_STORY, "en"),
        "kiel": (SAME_KIND_OTHER_STORY, "en"),
    }
    articles = [
        Article(
            article_id=key,
            url=f"https://example.org/{key}",
            canonical_url=f"https://example.org/{key}",
            source_domain="example.org",
            title=text.split("\n", 1)[0],
            body=text.split("\n", 1)[1],
            language=language,
            fetched_at=NOW,
            published_at=NOW,
            body_hash=key,
        )
        for key, (text, language) in texts.items()
    ]
    results = stage.process_batch(articles)
    stories = {}
    for article, result in zip(articles, results, strict=True):
        assert not isinstance(result, BaseException)
        stories[article.article_id] = result.story_id
    assert stories["rewritten"] == stories["german"] == stories["fire"] == "fire"
    assert stories["earnings"] == "earnings"
    assert stories["kiel"] == "kiel"
