"""`schoolgate lists build`: turn pinned upstream data into list files, reproducibly.

The manifest (`policy/data/sources.yaml`) names each upstream repository, the commit, and the
SHA-256 of every file read; `--upstream DIR` holds a checkout of each source at that commit in
`DIR/<source name>/`. Upstream files are read, never copied into this project. Each output says
where every entry came from (source and commit); entries added or removed by hand live in the
reviewed file the manifest names (`hand_added`), each with a reason. The same manifest and the
same upstream files always give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schoolgate.policy.listformats import (
    ListEntry,
    ListFile,
    ListFormat,
    ParsedList,
    canonical_host,
    compact,
    format_list_file,
    parse_adblock,
    parse_list,
    resolve_v2fly,
)
from schoolgate.policy.lists import EXACT_PREFIX

BUILT_MARK = (
    "Built by 'schoolgate lists build' from policy/data/sources.yaml: do not edit by "
    "hand; change the manifest or hand-added.yaml and rebuild."
)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 50_000_000
# libyaml's safe loader when PyYAML was built with it (service files can be long), else Python's
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSource(_Strict):
    repository: str = Field(min_length=1)
    commit: str
    files: dict[str, str] = Field(min_length=1)  # path in the repository -> sha256

    @model_validator(mode="after")
    def _check(self) -> UpstreamSource:
        if not _COMMIT.fullmatch(self.commit):
            raise ValueError("commit must be the full 40-digit lowercase hex commit id")
        for path, digest in self.files.items():
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"files[{path!r}]: the sha256 must be 64 lowercase hex digits")
            if path.startswith("/") or ".." in Path(path).parts:
                raise ValueError(f"files[{path!r}]: a path inside the repository, please")
        return self


class Feed(_Strict):
    """One input of an output list."""

    source: str
    kind: Literal["v2fly", "adguard-service", "file"]
    name: str  # the v2fly list (data/<name>), the AdGuard service (services/<name>.yml), a path
    format: ListFormat | None = None  # for kind 'file'
    exclude_attrs: tuple[str, ...] = ()  # v2fly: leave out entries with these attributes


class Output(_Strict):
    list: str
    category: str
    description: str = Field(min_length=1)
    compiled: date  # written into the file: fixed here, so the build does not depend on today
    feeds: tuple[Feed, ...] = ()
    remarks: tuple[str, ...] = ()  # comment paragraphs written after the header


class HandEntry(_Strict):
    """One name (`domain`) or several (`domains`) added or removed by hand, with the reason."""

    domain: str | None = None
    domains: tuple[str, ...] = ()
    reason: str = Field(min_length=3)

    @model_validator(mode="after")
    def _one_of(self) -> HandEntry:
        if (self.domain is None) == (not self.domains):
            raise ValueError("give either 'domain: NAME' or 'domains: [NAME, ...]'")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return (self.domain,) if self.domain is not None else self.domains


class HandList(_Strict):
    add: tuple[HandEntry, ...] = ()
    remove: tuple[HandEntry, ...] = ()  # upstream names that are not the platform, or shared


class Manifest(_Strict):
    sources: dict[str, UpstreamSource]
    hand_added: str | None = None  # a YAML file beside the manifest: list name -> HandList
    outputs: tuple[Output, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        for output in self.outputs:
            for feed in output.feeds:
                if feed.source not in self.sources:
                    raise ValueError(
                        f"output {output.list}: feed source {feed.source!r} is "
                        f"not under 'sources' (known: {', '.join(self.sources)})"
                    )
                if feed.kind == "file" and feed.format is None:
                    raise ValueError(f"output {output.list}: a 'file' feed needs a format")
        return self


class BuildError(ValueError):
    """The manifest, the hand-added file or an upstream file is wrong; says every problem."""


@dataclass(frozen=True, slots=True)
class BuiltList:
    name: str
    text: str
    entries: int


def load_manifest(path: Path) -> tuple[Manifest, dict[str, HandList]]:
    manifest = _validated(Manifest, _yaml(path), path)
    hand: dict[str, HandList] = {}
    if manifest.hand_added is not None:
        hand_path = path.parent / manifest.hand_added
        raw = _yaml(hand_path) or {}
        if not isinstance(raw, dict):
            raise BuildError(f"{hand_path}: expected a mapping of list name -> add/remove")
        hand = {str(k): _validated(HandList, v, hand_path, where=str(k)) for k, v in raw.items()}
        unknown = sorted(set(hand) - {o.list for o in manifest.outputs})
        if unknown:
            raise BuildError(f"{hand_path}: {', '.join(unknown)}: no such output in {path}")
    return manifest, hand


def build_lists(
    manifest: Manifest, hand: Mapping[str, HandList], upstream: Path
) -> list[BuiltList]:
    """Every output list's text, from the checkouts under `upstream`. Raises BuildError with
    every problem (a missing or changed file, an entry that is not a host name, ...)."""
    problems: list[str] = []
    texts = _read_pinned(manifest, upstream, problems)
    built: list[BuiltList] = []
    for output in manifest.outputs:
        entries: list[ListEntry] = []
        sources: list[str] = []
        for feed in output.feeds:
            src = manifest.sources[feed.source]
            parsed, paths = _feed(feed, texts.get(feed.source, {}), problems, output.list)
            tag = f"{feed.source}@{src.commit[:12]}"
            entries.extend(ListEntry(h, f"{tag} {paths[0]}") for h in parsed.hosts)
            sources.append(f"{src.repository} {', '.join(paths)} (commit {src.commit})")
        own = hand.get(output.list, HandList())
        where = f"{manifest.hand_added}: {output.list}:"
        removed = {
            name: raw for _, raw, name in _hand_names(own.remove, problems, f"{where} remove")
        }
        given = {e.host for e in entries}
        problems.extend(
            f"{where} remove {raw!r}: no feed gives it: drop the entry"
            for name, raw in removed.items()
            if name not in given and EXACT_PREFIX + name not in given
        )
        entries = [
            e
            for e in entries
            if e.host not in removed and e.host.removeprefix(EXACT_PREFIX) not in removed
        ]
        for item, _, name in _hand_names(own.add, problems, f"{where} add"):
            entries.append(ListEntry(name, f"hand: {item.reason}"))
        if own.add:
            sources.append(f"hand-added entries, each with its reason ({manifest.hand_added})")
        kept = compact(entries)
        text = format_list_file(
            ListFile(
                output.category,
                output.description,
                output.compiled,
                tuple(sources),
                kept,
                (BUILT_MARK, *output.remarks),
            )
        )
        built.append(BuiltList(output.list, text, len(kept)))
    if problems:
        raise BuildError("\n".join(problems))
    return built


def _hand_names(
    items: tuple[HandEntry, ...], problems: list[str], where: str
) -> list[tuple[HandEntry, str, str]]:
    """(entry, name as written, canonical name) of every name in `items`; a `full:` prefix (one
    host, not its subdomains) is kept. Names that are not host names become problems."""
    out: list[tuple[HandEntry, str, str]] = []
    for item in items:
        for raw in item.names:
            exact = EXACT_PREFIX if raw.startswith(EXACT_PREFIX) else ""
            name = canonical_host(raw.removeprefix(EXACT_PREFIX))
            if isinstance(name, str):
                out.append((item, raw, exact + name))
            else:
                problems.append(f"{where} {raw!r}: {name.message}")
    return out


def _feed(
    feed: Feed, files: Mapping[str, str], problems: list[str], out: str
) -> tuple[ParsedList, list[str]]:
    if feed.kind == "v2fly":
        data = {p.removeprefix("data/"): t for p, t in files.items() if p.startswith("data/")}
        parsed = resolve_v2fly(data, feed.name, exclude_attrs=feed.exclude_attrs, exact_hosts=True)
        paths = [f"data/{feed.name}"]
    elif feed.kind == "adguard-service":
        path = f"services/{feed.name}.yml"
        parsed = _adguard_service(files.get(path), path, problems)
        paths = [path]
    else:
        assert feed.format is not None  # checked by the manifest
        text = files.get(feed.name)
        if text is None:
            problems.append(
                f"{out}: {feed.source}:{feed.name} is not pinned under the source's files"
            )
            return ParsedList(()), [feed.name]
        parsed = parse_list(feed.format, text, source=feed.name)
        paths = [feed.name]
    problems.extend(f"{out}: {feed.source}: {p.where}: {p.message}" for p in parsed.problems)
    return parsed, paths


def _adguard_service(text: str | None, path: str, problems: list[str]) -> ParsedList:
    if text is None:
        problems.append(f"{path} is not pinned under the source's files")
        return ParsedList(())
    try:
        spec = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not YAML: {exc}")
        return ParsedList(())
    rules = spec.get("rules") if isinstance(spec, dict) else None
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        problems.append(f"{path}: expected 'rules:' as a list of filter rules")
        return ParsedList(())
    return parse_adblock("\n".join(rules), source=path)


def _read_pinned(
    manifest: Manifest, upstream: Path, problems: list[str]
) -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = {}
    for name, src in manifest.sources.items():
        root = upstream / name
        if not root.is_dir():
            problems.append(
                f"{root}: missing: check out {src.repository} at commit {src.commit} there"
            )
            continue
        for path, digest in src.files.items():
            file = root / path
            try:
                if file.stat().st_size > MAX_FILE_BYTES:
                    problems.append(f"{file}: larger than {MAX_FILE_BYTES} bytes")
                    continue
                data = file.read_bytes()
            except OSError as exc:
                problems.append(
                    f"{file}: cannot read it ({exc}): is the checkout at commit {src.commit}?"
                )
                continue
            got = hashlib.sha256(data).hexdigest()
            if got != digest:
                problems.append(
                    f"{file}: sha256 {got[:16]}... is not the pinned "
                    f"{digest[:16]}...: check out commit {src.commit}, or pin "
                    "the new file on purpose"
                )
                continue
            texts.setdefault(name, {})[path] = data.decode("utf-8", "replace")
    return texts


def _yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BuildError(f"{path}: cannot read it: {exc}") from None


def _validated[M: BaseModel](model: type[M], data: object, path: Path, where: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        prefix = f"{where}." if where else ""
        raise BuildError(
            "\n".join(
                f"{path}: {prefix}{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors()
            )
        ) from None
