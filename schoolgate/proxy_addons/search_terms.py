"""What someone searched for, read from a decrypted search engine or site-search URL (the DfE
filtering standard asks for "the search term"), and how that engine's safe mode is forced: a
table of engines read once from a data file (policy/data/search_sites.yaml, editable),
then pure look-ups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

MAX_TERMS = 500  # characters kept: enough for any real search, bounded for the database
SITES_FILE = Path(__file__).resolve().parents[1] / "policy" / "data" / "search_sites.yaml"
SAFE_BY_DESIGN = "safe"  # the site is safe by design (a children's engine, a site search)
CANNOT_ENFORCE = "none"  # no documented way to force its safe mode


@dataclass(frozen=True, slots=True)
class Engine:
    name: str
    host: re.Pattern[str]
    path: re.Pattern[str]
    params: tuple[str, ...]
    safe: str | tuple[tuple[str, str], ...]  # SAFE_BY_DESIGN, CANNOT_ENFORCE or params to set
    words: tuple[str, ...]  # literal words of the host pattern: a cheap first look

    @property
    def enforceable(self) -> bool:
        return self.safe != CANNOT_ENFORCE


def parse_sites(text: str, *, source: str) -> tuple[Engine, ...]:
    """The engine table from the YAML text; ValueError names every bad entry."""
    data: Any = yaml.safe_load(text)
    entries = data.get("engines") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{source}: expected 'engines:' with a list of engines")
    engines, problems = [], []
    for i, entry in enumerate(entries):
        where = f"{source}: engines[{i}]"
        try:
            name, host, path = str(entry["name"]), str(entry["host"]), str(entry["path"])
            params = tuple(str(p) for p in entry["params"])
            raw_safe = entry.get("safe", CANNOT_ENFORCE)
            safe: str | tuple[tuple[str, str], ...]
            if isinstance(raw_safe, dict) and raw_safe:
                safe = tuple((str(k), str(v)) for k, v in raw_safe.items())
            elif raw_safe in (SAFE_BY_DESIGN, CANNOT_ENFORCE):
                safe = str(raw_safe)
            else:
                raise ValueError(
                    f"safe: {raw_safe!r} is not a mapping of parameters, "
                    f"'{SAFE_BY_DESIGN}' or '{CANNOT_ENFORCE}'"
                )
            if not params:
                raise ValueError("params: name at least one query parameter")
            words = tuple(
                w for w in re.findall(r"[a-z]{3,}", host.replace("\\.", " ")) if w != "com"
            )
            engines.append(
                Engine(name, re.compile(host), re.compile(path), params, safe, words or ("",))
            )
        except (KeyError, TypeError) as exc:
            problems.append(
                f"{where}: missing or malformed {exc}: each engine needs name, "
                "host, path and params"
            )
        except (ValueError, re.error) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(engines)


ENGINES = parse_sites(SITES_FILE.read_text(encoding="utf-8"), source=str(SITES_FILE))
_WORDS = tuple(sorted({w for e in ENGINES for w in e.words}))


def search_engine(host: str, path: str, engines: tuple[Engine, ...] = ENGINES) -> Engine | None:
    """The engine whose search page `host` + `path` is, else None."""
    host = host.lower().rstrip(".")
    words = _WORDS if engines is ENGINES else tuple(w for e in engines for w in e.words)
    if not any(word in host for word in words):
        return None
    for engine in engines:
        if engine.host.search(host) and engine.path.match(path or "/"):
            return engine
    return None


def engine_terms(engine: Engine, query: str) -> str | None:
    """The words searched for on `engine`, from the raw query string; whitespace collapsed."""
    if not query:
        return None
    try:
        values = parse_qs(query, keep_blank_values=False, max_num_fields=200)
    except ValueError:  # more fields than any search has: not a search we can read
        return None
    for param in engine.params:
        for value in values.get(param, ()):
            words = " ".join(value.split())
            if words:
                return words[:MAX_TERMS]
    return None


def search_terms(host: str, path: str, query: str) -> str | None:
    """The words searched for, if `host` + `path` is a known engine's search and `query` (the
    raw query string, without '?') carries them; else None. Whitespace is collapsed."""
    if not query:
        return None
    engine = search_engine(host, path)
    return engine_terms(engine, query) if engine is not None else None
