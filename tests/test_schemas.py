from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from newsflow.errors import InvalidMessage
from newsflow.loop import decode
from newsflow.schemas import Article, LinkMessage
from newsflow.wire import export_schemas


def _link(**overrides):
    fields = {
        "url": "https://example.org/a?utm_source=x",
        "canonical_url": "https://example.org/a",
        "article_id": "a" * 32,
        "feed_url": "https://example.org/feed",
        "publisher": "example.org",
        "discovered_at": datetime(2026, 11, 27, tzinfo=UTC),
    }
    return LinkMessage(**{**fields, **overrides})


def test_round_trip_through_json_keeps_everything():
    link = _link(title="Überschrift")
    assert decode(LinkMessage, link.model_dump_json().encode()) == link


def test_unknown_fields_and_wrong_versions_are_rejected():
    raw = _link().model_dump()
    with pytest.raises(ValidationError):
        LinkMessage.model_validate({**raw, "surprise": 1})
    with pytest.raises(ValidationError):
        LinkMessage.model_validate({**raw, "schema_version": 2})


def test_poison_bytes_become_invalid_message():
    with pytest.raises(InvalidMessage) as bad_json:
        decode(LinkMessage, b"{not json")
    assert bad_json.value.reason == "invalid_message"
    with pytest.raises(InvalidMessage):
        decode(LinkMessage, b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidMessage):
        decode(Article, _link().model_dump_json().encode())  # a link is not an article


def test_naive_datetimes_are_refused():
    with pytest.raises(ValidationError):
        _link(discovered_at=datetime(2026, 11, 27))  # naive on purpose: the point of the test


def test_committed_schema_files_match_the_models():
    assert export_schemas(check=True) == [], "run `newsflow schema` and commit newsflow/wire_schemas/"
