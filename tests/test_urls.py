from ingest.urls import article_id, canonicalize_url, source_domain


def test_tracking_parameters_fragments_and_case_are_dropped():
    url = "HTTPS://WWW.Stern.de:443/politik/artikel.html?utm_source=rss&utm_medium=feed&id=7#kommentare"
    assert canonicalize_url(url) == "https://stern.de/politik/artikel.html?id=7"


def test_query_order_does_not_matter_but_real_parameters_stay():
    a = canonicalize_url("https://example.org/a?b=2&a=1")
    b = canonicalize_url("https://example.org/a?a=1&b=2&fbclid=xyz")
    assert a == b == "https://example.org/a?a=1&b=2"


def test_amp_variants_map_to_the_article():
    assert canonicalize_url("https://example.org/news/story/amp") == "https://example.org/news/story"
    assert (
        canonicalize_url("https://example.org/amp/news/story.html") == "https://example.org/news/story.html"
    )
    assert (
        canonicalize_url("https://example.org/news/story.amp.html") == "https://example.org/news/story.html"
    )


def test_non_default_port_is_kept():
    assert (
        canonicalize_url("http://127.0.0.1:8765/articles/x.html") == "http://127.0.0.1:8765/articles/x.html"
    )


def test_article_id_is_stable_and_scheme_blind():
    canonical = canonicalize_url("https://example.org/a")
    assert article_id(canonical) == article_id(canonicalize_url("http://www.example.org/a#x"))
    assert len(article_id(canonical)) == 32
    assert article_id(canonical) != article_id(canonicalize_url("https://example.org/b"))


def test_source_domain_strips_www():
    assert source_domain("https://www.stern.de/x") == "stern.de"
