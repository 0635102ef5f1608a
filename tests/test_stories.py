"""Story clustering: agency copies share a story; other stories, old copies and restarts behave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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
