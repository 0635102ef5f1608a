"""Extraction on hand-made pages: paywall flags, metadata from JSON-LD and ``<meta>``, and the
body clean-ups (comment-split text, repeated headline, JSON-LD full text, metered paragraphs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ingest.extract import drop_leading_titles, extract, parse_datetime, parse_html, rejoin_split_body

PARAGRAPHS = [
    "The harbour authority confirmed on Tuesday that the northern quay will close for repairs next spring, "
    "after divers found cracks in the concrete supports during a routine inspection in October.",
    "Ferry operators said they would move their departures to the southern pier for the duration of the "
    "works, which the authority expects to last about four months if the weather allows it.",
    "Local traders worry about fewer visitors in the old town, but the council promised extra buses and "
    "signs to guide passengers from the temporary terminal to the market square and the station.",
]
NAV = "".join(f'<li><a href="/section/{n}">Section {n} news and more</a></li>' for n in range(12))


def page(
    body: str,
    head: str = "",
    jsonld: dict[str, Any] | None = None,
    title: str = "Northern quay to close for repairs",
    h1: bool = True,
) -> str:
    script = f'<script type="application/ld+json">{json.dumps(jsonld)}</script>' if jsonld else ""
    heading = f"<h1>{title}</h1>" if h1 else ""
    return (
        f'<!doctype html><html lang="en-GB"><head><title>{title} | Harbour Times</title>{head}{script}</head>'
        f"<body><header><nav><ul>{NAV}</ul></nav></header><main><article>{heading}{body}</article></main>"
        "<footer><p>Harbour Times Ltd. All rights reserved. Imprint, privacy and contact.</p></footer>"
        "</body></html>"
    )


def paragraphs(items: list[str] = PARAGRAPHS) -> str:
    return "".join(f"<p>{text}</p>" for text in items)


# --- paywall -----------------------------------------------------------------------------------

TEASER = PARAGRAPHS[0]
BOX = "Read the whole story with Harbour Plus: every article, the e-paper and the archive for 4.99 a month."


def paywalled_page(**kwargs: Any) -> str:
    box = f'<div class="paywall" id="offer"><h3>Subscribe now to continue</h3><p>{BOX}</p></div>'
    return page(f"<p>{TEASER}</p>{box}", **kwargs)


def test_a_free_article_is_not_flagged():
    article = extract(page(paragraphs(), jsonld={"@type": "NewsArticle", "isAccessibleForFree": True}))
    assert article.paywalled is False


@pytest.mark.parametrize("free", [False, "False", "false"])
def test_jsonld_not_accessible_for_free_flags_and_keeps_only_the_teaser(free: object):
    article = extract(paywalled_page(jsonld={"@type": "NewsArticle", "isAccessibleForFree": free}))
    assert article.paywalled is True
    assert TEASER in article.body
    assert "Harbour Plus" not in article.body
    assert "Subscribe now" not in article.body


def test_jsonld_has_part_locked_flags():
    jsonld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "Harbour Times"},
            {
                "@type": "NewsArticle",
                "headline": "Northern quay to close for repairs",
                "hasPart": [
                    {"@type": "WebPageElement", "isAccessibleForFree": "False", "cssSelector": ".locked"}
                ],
            },
        ],
    }
    assert extract(paywalled_page(jsonld=jsonld)).paywalled is True


def test_content_tier_meta_flags():
    head = '<meta property="article:content_tier" content="locked">'
    assert extract(paywalled_page(head=head)).paywalled is True
    assert extract(page(paragraphs(), head=head.replace("locked", "free"))).paywalled is False


@pytest.mark.parametrize("marker", ['class="article stern-plus"', 'id="piano-paywall"', 'class="js-paywall"'])
def test_paywall_markup_flags(marker: str):
    html = page(f"<div {marker}></div>{paragraphs()}")
    assert extract(html).paywalled is True


def test_a_stated_word_count_far_above_the_body_means_truncated():
    jsonld = {"@type": "NewsArticle", "wordCount": 1200}
    assert extract(page(paragraphs(), jsonld=jsonld)).paywalled is True
    words = len(" ".join(PARAGRAPHS).split())
    assert extract(page(paragraphs(), jsonld={**jsonld, "wordCount": words})).paywalled is False


def test_metered_paragraphs_marked_paywall_are_the_article_not_furniture():
    """Some publishers put ``class="paywall"`` on every paragraph behind the meter."""
    body = "".join(f'<p class="paywall">{text}</p>' for text in PARAGRAPHS)
    article = extract(page(body))
    for text in PARAGRAPHS:
        assert text in article.body
    assert article.paywalled is True


# --- metadata ----------------------------------------------------------------------------------


def test_metadata_from_jsonld():
    jsonld = {
        "@context": "https://schema.org",
        "@type": ["NewsArticle"],
        "headline": "Quay closure: what ferry passengers need to know",
        "description": "The northern quay closes in spring.",
        "author": [{"@type": "Person", "name": "Mara Quist"}, {"@type": "Person", "name": "Tom Reed"}],
        "datePublished": "2026-11-20T08:15:00+01:00",
        "dateModified": "2026-11-20T09:30:00+01:00",
        "publisher": {"@type": "Organization", "name": "Harbour Times"},
        "inLanguage": "en-GB",
        "articleSection": "Local",
        "keywords": ["harbour", "ferries"],
        "image": [{"@type": "ImageObject", "url": "https://harbour.example/quay.jpg"}],
    }
    head = '<link rel="canonical" href="https://harbour.example/local/quay">'
    article = extract(page(paragraphs(), head=head, jsonld=jsonld))
    assert article.title == jsonld["headline"]
    assert article.description == jsonld["description"]
    assert article.authors == ("Mara Quist", "Tom Reed")
    assert article.published_at == datetime(2026, 11, 20, 7, 15, tzinfo=UTC)
    assert article.modified_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert article.site_name == "Harbour Times"
    assert article.language == "en"
    assert article.categories[:3] == ("Local", "harbour", "ferries")
    assert article.top_image == "https://harbour.example/quay.jpg"
    assert article.canonical_url == "https://harbour.example/local/quay"


def test_metadata_from_meta_tags_when_there_is_no_jsonld():
    head = (
        '<meta property="og:title" content="Quay to close">'
        '<meta name="description" content="Repairs from spring.">'
        '<meta name="author" content="Mara Quist, Tom Reed">'
        '<meta property="article:published_time" content="2026-11-20T08:15:00Z">'
        '<meta property="og:updated_time" content="2026-11-21T10:00:00Z">'
        '<meta property="og:site_name" content="Harbour Times">'
        '<meta property="article:section" content="Local">'
        '<meta property="article:tag" content="Ferries">'
        '<meta property="article:tag" content="Harbour">'
        '<meta name="twitter:image" content="https://harbour.example/t.jpg">'
        '<meta property="og:url" content="https://harbour.example/local/quay">'
    )
    html = page(paragraphs(), head=head).replace('lang="en-GB"', "")
    article = extract(html.replace("<head>", '<head><meta property="og:locale" content="de_DE">'))
    assert article.title == "Quay to close"
    assert article.description == "Repairs from spring."
    assert article.authors == ("Mara Quist", "Tom Reed")
    assert article.published_at == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert article.modified_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert article.site_name == "Harbour Times"
    assert article.language == "de"
    assert {"Local", "Ferries", "Harbour"} <= set(article.categories)
    assert article.top_image == "https://harbour.example/t.jpg"
    assert article.canonical_url == "https://harbour.example/local/quay"


def test_author_urls_are_not_names():
    head = '<meta property="article:author" content="https://facebook.com/harbourtimes">'
    assert "https://facebook.com/harbourtimes" not in extract(page(paragraphs(), head=head)).authors


def test_title_falls_back_to_the_headline_and_the_document_title():
    assert extract(page(paragraphs())).title == "Northern quay to close for repairs"
    no_h1 = extract(page(paragraphs(), h1=False))
    assert no_h1.title.startswith("Northern quay to close for repairs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:15:00+0100", datetime(2026, 11, 20, 8, 15, tzinfo=timezone(timedelta(hours=1)))),
        ("Fri, 20 Nov 2026 08:15:00 GMT", datetime(2026, 11, 20, 8, 15, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_dates_in_the_formats_pages_use(text: str, expected: datetime | None):
    assert parse_datetime(text) == expected


# --- body ------------------------------------------------------------------------------------


def test_text_split_by_empty_comments_is_kept_whole():
    """Server-rendered pages write ``When <!-- -->President``; the words after a comment must stay."""
    split = [text.replace(" ", " <!-- -->", 3) for text in PARAGRAPHS]
    article = extract(page(paragraphs(split)))
    for text in PARAGRAPHS:
        assert text in article.body


def test_a_headline_repeated_at_the_top_of_the_body_is_dropped():
    body = f"<div><p><b>Northern quay to close for repairs</b></p>{paragraphs()}</div>"
    article = extract(page(body, h1=False))
    assert not article.body.startswith("Northern quay")
    assert article.body.startswith(PARAGRAPHS[0])


def test_drop_leading_titles_keeps_lines_that_only_start_like_the_title():
    titles = ["Quay to close for repairs"]
    assert drop_leading_titles("Quay to close for repairs\nText.", titles) == "Text."
    assert drop_leading_titles("Quay to close for\nText.", titles) == "Text."  # a kicker in the title
    assert drop_leading_titles("Quay\nText.", titles) == "Quay\nText."  # too short to be sure
    assert drop_leading_titles("Quay to close for repairs, the council said.", titles).startswith("Quay")


def test_jsonld_article_body_wins_when_it_holds_the_visible_text_and_more():
    full = "\n".join([*PARAGRAPHS, *MORE])  # the page shows only the first part
    article = extract(page(paragraphs(), jsonld={"@type": "NewsArticle", "articleBody": full}))
    assert all(text in article.body for text in MORE)


def test_jsonld_article_body_adding_only_a_caption_is_not_preferred():
    caption = "Photo: the northern quay at low tide."
    full = "\n".join([*PARAGRAPHS, caption])
    article = extract(page(paragraphs(), jsonld={"@type": "NewsArticle", "articleBody": full}))
    assert caption not in article.body


def test_jsonld_article_body_that_is_only_a_summary_is_ignored():
    summary = "The northern quay closes next spring."
    article = extract(page(paragraphs(), jsonld={"@type": "NewsArticle", "articleBody": summary}))
    assert all(text in article.body for text in PARAGRAPHS)


MORE = [
    "Engineers from the port company will start by draining the dock basin, a task that alone takes three "
    "weeks because the old sluices have to be opened by hand and checked one by one.",
    "The repair itself uses a new kind of fibre-reinforced concrete that the authority tested last year on "
    "a smaller jetty, where it survived two winters of storms without visible damage.",
    "Once the quay reopens the authority wants to add charging points for electric ferries, which the "
    "regional government has promised to fund from its climate programme next year.",
]


def split_article(between: str = '<div class="ad-row"><div class="ad__slot"></div></div>') -> str:
    def row(texts: list[str]) -> str:
        return (
            f'<div class="grid row"><div class="body__block">{paragraphs(texts)}</div><aside></aside></div>'
        )

    return page(f"{row(PARAGRAPHS)}{between}{row(MORE)}")


def test_an_article_split_into_blocks_between_ad_rows_is_rejoined():
    tree = parse_html(split_article())
    assert rejoin_split_body(tree) == 1
    assert len(tree.xpath('//div[@class="body__block"]')) == 1
    body = extract(split_article()).body
    assert all(text in body for text in [*PARAGRAPHS, *MORE])
    assert body.index(PARAGRAPHS[-1]) < body.index(MORE[0])


def test_blocks_with_content_between_them_are_not_rejoined():
    between = "<h2>What the traders say about the closure of the quay</h2>"
    assert rejoin_split_body(parse_html(split_article(between))) == 0


def test_sibling_blocks_and_single_blocks_are_left_alone():
    siblings = page(
        f'<div class="body__block">{paragraphs()}</div><div class="body__block">{paragraphs(MORE)}</div>'
    )
    assert rejoin_split_body(parse_html(siblings)) == 0
    assert rejoin_split_body(parse_html(page(f'<div class="body__block">{paragraphs()}</div>'))) == 0


def test_jsonld_entities_are_decoded_and_organisations_are_not_authors():
    jsonld = {
        "@type": "NewsArticle",
        "headline": "Quay &amp; ferries: what you&#039;ll need to know",
        "author": [
            {"@type": "Organization", "name": "Harbour Times"},
            {"@type": "Person", "name": "Mara Quist"},
        ],
    }
    article = extract(page(paragraphs(), jsonld=jsonld, h1=False))
    assert article.title == "Quay & ferries: what you'll need to know"
    assert article.authors == ("Mara Quist",)
    only_publisher = {**jsonld, "author": {"@type": "Organization", "name": "Harbour Times"}}
    head = '<meta name="author" content="Tom Reed">'
    assert extract(page(paragraphs(), head=head, jsonld=only_publisher)).authors == ("Tom Reed",)


def test_the_social_title_wins_over_a_search_engine_headline():
    jsonld = {"@type": "NewsArticle", "headline": "Quay closure 2026: dates, ferries, buses | Harbour"}
    head = '<meta property="og:title" content="Northern quay to close for repairs">'
    assert extract(page(paragraphs(), head=head, jsonld=jsonld)).title == "Northern quay to close for repairs"
