"""The Article Extraction Benchmark metric on tiny hand-made cases, the data-set readers, and a
cross-check against the benchmark's own published figures."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from ingest.evaluation import (
    PageScore,
    benchmark_pages,
    evaluate,
    fundus_fixtures,
    fundus_pages,
    metadata_accuracy,
    score_page,
    shingles,
    summarise,
)


def test_shingles_are_4_grams_of_word_tokens_with_counts():
    assert shingles("a b, c-d e") == {("a", "b", "c", "d"): 1, ("b", "c", "d", "e"): 1}
    assert shingles("x y x y x y x") == {("x", "y", "x", "y"): 2, ("y", "x", "y", "x"): 2}
    # Fewer tokens than a shingle: the short sequence is the one shingle; no tokens: none.
    assert shingles("only two") == {("only", "two"): 1}
    assert shingles(" , . ") == {}


def test_a_perfect_page_and_an_empty_prediction():
    perfect = score_page("p", "one two three four five", "one two three four five")
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    empty = score_page("p", "one two three four five", "")
    assert (empty.tp, empty.fp, empty.fn) == (0.0, 0.0, 1.0)
    assert (empty.precision, empty.recall) == (0.0, 0.0)


def test_counts_are_normalised_per_page():
    # gold shingles: abcd, bcde; predicted: abcd, bcdx -> tp 1, fp 1, fn 1, each a third.
    score = score_page("p", "a b c d e", "a b c d x")
    assert score.tp == pytest.approx(1 / 3)
    assert score.fp == pytest.approx(1 / 3)
    assert score.fn == pytest.approx(1 / 3)
    assert score.precision == pytest.approx(0.5)
    assert score.recall == pytest.approx(0.5)


def test_repeated_shingles_count_by_multiplicity():
    # The gold says a paragraph twice; predicting it once finds half of it.
    score = score_page("p", "w x y z\nw x y z", "w x y z")
    assert score.precision == 1.0
    assert 0.0 < score.recall < 1.0


def test_summary_macro_averages_and_takes_f1_of_the_averages():
    pages = [
        PageScore("long", tp=0.5, fp=0.5, fn=0.0),  # P 0.5, R 1.0
        PageScore("short", tp=1.0, fp=0.0, fn=0.0),  # P 1.0, R 1.0
        PageScore("missed", tp=0.0, fp=0.0, fn=1.0),  # nothing predicted: out of the precision mean
    ]
    report = summarise(pages, worst=1)
    precision, recall = (0.5 + 1.0) / 2, (1.0 + 1.0 + 0.0) / 3
    assert report["precision"] == round(precision, 4)
    assert report["recall"] == round(recall, 4)
    assert report["f1"] == round(2 * precision * recall / (precision + recall), 4)
    assert report["pages"] == 3
    assert [w["page"] for w in report["worst"]] == ["missed"]


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no pages"):
        summarise([])


def test_a_page_the_extractor_rejects_scores_empty_with_its_reason():
    class Rejected(Exception):
        reason = "no_main_content"

    def extractor(html: bytes, url: str | None) -> str:
        if b"bad" in html:
            raise Rejected
        return html.decode()

    scores = evaluate(
        [("ok", None, b"one two three four", "one two three four"), ("bad", None, b"bad", "x y")], extractor
    )
    report = summarise(scores)
    assert report["failed"] == {"no_main_content": 1}
    assert report["worst"][0]["page"] == "bad"


def test_benchmark_pages_read_plain_and_gzipped_html(tmp_path: Path):
    (tmp_path / "a.html").write_bytes(b"<p>A</p>")
    (tmp_path / "b.html.gz").write_bytes(gzip.compress(b"<p>B</p>"))
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps({"a": {"articleBody": "A", "url": "u"}, "b": {"articleBody": "B"}, "c": {}}))
    pages = list(benchmark_pages(gold, tmp_path))
    assert [(p[0], p[1], p[2], p[3]) for p in pages] == [
        ("a", "u", b"<p>A</p>", "A"),
        ("b", None, b"<p>B</p>", "B"),
    ]


def _fundus_fixture(folder: Path, publisher: str, versions: dict[str, str], pages: dict[str, str]) -> None:
    """``versions``: version -> body paragraph; ``pages``: file date -> crawl date."""
    fixtures = {
        version: {
            "title": version,
            "body": {
                "summary": [f"Lead {version}."],
                "sections": [{"headline": [f"Head {version}"], "paragraphs": [text]}],
            },
        }
        for version, text in versions.items()
    }
    (folder / f"{publisher}.json").write_text(json.dumps(fixtures))
    meta = {}
    for date, crawled in pages.items():
        name = f"{publisher}_{date}.html.gz"
        (folder / name).write_bytes(gzip.compress(f"<p>{date}</p>".encode()))
        meta[name] = {"url": f"https://example.org/{date}", "crawl_date": crawled}
    (folder / "meta.info").write_text(json.dumps(meta))


def test_fundus_versions_pair_with_pages_in_crawl_order(tmp_path: Path):
    _fundus_fixture(
        tmp_path,
        "Daily",
        {"V2": "second layout", "V1": "first layout", "V1_1": "patched layout"},
        {
            "2024_01_01": "2024-01-01 10:00:00",
            "2023_01_01": "2023-01-01 10:00:00",
            "2023_06_01": "2023-06-01",
        },
    )
    pages = list(fundus_pages(tmp_path))
    by_page = {page_id: (url, html, gold) for page_id, url, html, gold in pages}
    assert by_page["Daily_2023_01_01"][2] == "Lead V1.\nHead V1\nfirst layout"
    assert by_page["Daily_2023_06_01"][2].endswith("patched layout")
    assert by_page["Daily_2024_01_01"][2].endswith("second layout")
    assert by_page["Daily_2024_01_01"][0] == "https://example.org/2024_01_01"
    assert by_page["Daily_2024_01_01"][1] == b"<p>2024_01_01</p>"


def test_fundus_publisher_with_unpaired_pages_is_skipped(tmp_path: Path):
    _fundus_fixture(tmp_path, "Odd", {"V1": "one", "V2": "two"}, {"2024_01_01": "2024-01-01"})
    assert list(fundus_pages(tmp_path)) == []


def test_fundus_public_fixtures_all_load(shared_data: Path):
    folder = shared_data / "extraction" / "fundus-public"
    pages = list(fundus_pages(folder))
    assert len(pages) == len(list(folder.rglob("*.html.gz")))
    assert all(gold.strip() and html.lstrip().startswith(b"<") for _, _, html, gold in pages)


def _published_f1(table: str, name: str) -> float:
    match = re.search(rf"^\s+{re.escape(name)}\s+\S+\s+([0-9.]+) ±", table, re.MULTILINE)
    assert match, name
    return float(match.group(1))


@pytest.mark.parametrize("name", ["trafilatura", "readability", "goose3", "justext"])
def test_our_metric_reproduces_the_published_figures(shared_data: Path, name: str):
    """Scoring the benchmark's own stored outputs must give the F1 its authors published."""
    root = shared_data / "extraction" / "scrapinghub"
    gold = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    output = json.loads((root / "output" / f"{name}.json").read_text(encoding="utf-8"))["output"]
    scores = [
        score_page(key, item.get("articleBody", ""), output[key].get("articleBody", ""))
        for key, item in gold.items()
    ]
    published = _published_f1((root / "published-results-table.txt").read_text(encoding="utf-8"), name)
    assert round(summarise(scores)["f1"], 3) == pytest.approx(published, abs=0.0015)


def test_metadata_accuracy_compares_title_authors_and_date(tmp_path: Path):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    _fundus_fixture(
        tmp_path, "Daily", {"V1": "one", "V2": "two"}, {"2023_01_01": "2023-01-01", "2024_01_01": "2024"}
    )
    fixtures = list(fundus_fixtures(tmp_path))
    for fixture, authors, date in zip(
        fixtures, (["Ann Lee"], ["Bo Ma", "Cy Ng"]), ("2023-01-01 10:00:00+01:00", None), strict=True
    ):
        fixture.expected.update(authors=authors, publishing_date=date)

    def extractor(html: bytes, url: str | None) -> SimpleNamespace:
        if b"2024" in html:  # the V2 page: right title, one author missing, no date on either side
            return SimpleNamespace(title="v2", authors=("Cy Ng",), published_at=None)
        published = datetime(2023, 1, 1, 9, 0, 30, tzinfo=UTC)
        return SimpleNamespace(title="V1!", authors=("ann  lee",), published_at=published)

    assert metadata_accuracy(fixtures, extractor) == {"title": 1.0, "authors": 0.5, "published": 0.5}
