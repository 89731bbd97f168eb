"""search_terms: the words searched for, read from each engine's result URL."""

from __future__ import annotations

import pytest

from schoolgate.proxy_addons.search_terms import MAX_TERMS, search_terms


@pytest.mark.parametrize(
    ("host", "path", "query", "terms"),
    [
        ("www.google.com", "/search", "q=get+round+the+filter&hl=en", "get round the filter"),
        ("www.google.co.uk", "/search", "client=firefox&q=dinosaurs", "dinosaurs"),
        ("google.com.au", "/search", "q=koala", "koala"),
        ("www.bing.com", "/search", "q=space%20rockets&form=QBLH", "space rockets"),
        ("www.bing.com", "/images/search", "q=cats", "cats"),
        ("duckduckgo.com", "/", "q=unblocked+games&ia=web", "unblocked games"),
        ("html.duckduckgo.com", "/html/", "q=vpn", "vpn"),
        ("www.youtube.com", "/results", "search_query=minecraft+songs", "minecraft songs"),
        ("m.youtube.com", "/results", "search_query=lego", "lego"),
        ("uk.search.yahoo.com", "/search", "p=volcanoes&fr=yfp", "volcanoes"),
        ("www.ecosia.org", "/search", "method=index&q=trees", "trees"),
        ("www.startpage.com", "/sp/search", "query=private+search", "private search"),
        ("en.wikipedia.org", "/w/index.php", "search=Tudors&title=Special%3ASearch", "Tudors"),
        ("en.wikipedia.org", "/wiki/Special:Search", "search=Romans", "Romans"),
        ("search.brave.com", "/search", "q=brave", "brave"),
        ("www.kiddle.co", "/s.php", "q=planets", "planets"),
        ("yandex.ru", "/search/", "text=proxy", "proxy"),
        ("www.baidu.com", "/s", "wd=hello", "hello"),
        ("WWW.GOOGLE.COM.", "/search", "q=case", "case"),  # host spelling
        ("www.google.com", "/search", "q=%20%20spaced%0A%20out%20", "spaced out"),
    ],
)
def test_search_engines(host: str, path: str, query: str, terms: str) -> None:
    assert search_terms(host, path, query) == terms


@pytest.mark.parametrize(
    ("host", "path", "query"),
    [
        ("www.google.com", "/maps", "q=london"),  # not a search page
        ("www.google.com", "/search", "hl=en"),  # no words
        ("www.google.com", "/search", "q="),
        ("notgoogle.example", "/search", "q=x"),
        ("google.com.evil.test", "/search", "q=x"),
        ("www.youtube.com", "/watch", "v=abc&search_query=x"),
        ("learning.test", "/search", "q=x"),  # an unknown site's search is not recorded
        ("www.bing.com", "/search", "&".join(f"f{i}=1" for i in range(300))),  # too many fields
    ],
)
def test_not_a_search(host: str, path: str, query: str) -> None:
    assert search_terms(host, path, query) is None


def test_terms_are_bounded() -> None:
    terms = search_terms("www.google.com", "/search", "q=" + "a" * 5000)
    assert terms is not None
    assert len(terms) == MAX_TERMS
