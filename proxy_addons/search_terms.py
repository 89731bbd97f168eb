"""What someone searched for, read from a decrypted search engine URL (the DfE filtering standard
asks for "the search term"): a pure table of engines, the paths they search on and the query
parameter that carries the words.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

MAX_TERMS = 500  # characters kept: enough for any real search, bounded for the database

# (host pattern, path pattern, query parameters tried in order). Sources: each engine's own
# result URLs as a browser shows them (e.g. google.co.uk/search?q=..., youtube.com/results?
# search_query=..., search.yahoo.com/search?p=..., startpage.com/sp/search?query=...).
_ENGINES: tuple[tuple[re.Pattern[str], re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(host), re.compile(path), params) for host, path, params in (
        (r"(^|\.)google(\.com?)?(\.[a-z]{2,3})$", r"^/(search|webhp|images|url)?$", ("q",)),
        (r"(^|\.)bing\.com$", r"^/(images/|videos/|news/|shop)?search$", ("q",)),
        (r"(^|\.)duckduckgo\.com$", r"^/(html/?|lite/?)?$", ("q",)),
        (r"(^|\.)youtube\.com$", r"^/results$", ("search_query", "q")),
        (r"(^|\.)search\.yahoo\.com$", r"^/(search|yhs/search)?$", ("p", "q")),
        (r"(^|\.)ecosia\.org$", r"^/(search|images|videos|news)$", ("q",)),
        (r"(^|\.)startpage\.com$", r"^/(sp|do|rvd)/search$", ("query", "q")),
        (r"(^|\.)wikipedia\.org$", r"^/(w/index\.php|wiki/Special:Search)$", ("search",)),
        (r"(^|\.)search\.brave\.com$", r"^/(search|images|videos|news)$", ("q",)),
        (r"(^|\.)kiddle\.co$", r"^/s\.php$", ("q",)),  # a children's search engine
        (r"(^|\.)yandex\.[a-z.]+$", r"^/(search|images/search)/?$", ("text",)),
        (r"(^|\.)baidu\.com$", r"^/s$", ("wd", "word")),
        (r"(^|\.)qwant\.com$", r"^/$", ("q",)),
        (r"(^|\.)swisscows\.com$", r"^/(\w{2}/)?(web|images|video)$", ("query",)),
        (r"(^|\.)ask\.com$", r"^/web$", ("q",)),
    ))


# A cheap first look that rules out the hosts that are no search engine (nearly all of them,
# on every request): each engine's host pattern contains one of these words.
_ENGINE_WORDS = ("google", "bing", "duckduckgo", "youtube", "yahoo", "ecosia", "startpage",
                 "wikipedia", "brave", "kiddle", "yandex", "baidu", "qwant", "swisscows", "ask")


def search_terms(host: str, path: str, query: str) -> str | None:
    """The words searched for, if `host` + `path` is a known engine's search and `query` (the
    raw query string, without '?') carries them; else None. Whitespace is collapsed."""
    if not query:
        return None
    host = host.lower().rstrip(".")
    if not any(word in host for word in _ENGINE_WORDS):
        return None
    for host_re, path_re, params in _ENGINES:
        if not host_re.search(host) or not path_re.match(path or "/"):
            continue
        try:
            values = parse_qs(query, keep_blank_values=False, max_num_fields=200)
        except ValueError:  # more fields than any search has: not a search we can read
            return None
        for param in params:
            for value in values.get(param, ()):
                words = " ".join(value.split())
                if words:
                    return words[:MAX_TERMS]
        return None
    return None
