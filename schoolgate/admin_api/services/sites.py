"""What a person typed as a website, understood as its site: a pasted address
(https://www.bbc.co.uk/news?x=1) is its host name; a whole top-level domain or public suffix
(com, co.uk, translate.goog) is refused in plain words, by the Public Suffix List."""

from __future__ import annotations

import ipaddress
from functools import cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from schoolgate.admin_api.errors import InvalidInput
from schoolgate.policy.hostnames import HostError, normalise_host


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no download


def site_of(typed: str) -> str:
    """The host part of a pasted URL, or the text itself when it is just a name."""
    text = typed.strip()
    if "://" in text or "/" in text or "?" in text or "#" in text:
        try:
            parts = urlsplit(text if "://" in text else "//" + text)
            host = parts.hostname
        except ValueError:
            return text
        if host:
            return host
    return text


def site_name(typed: str, *, field: str = "host") -> str:
    """The canonical host name for what was typed or pasted, or InvalidInput saying plainly
    what is wrong with it."""
    found = normalise_host(site_of(typed))
    if isinstance(found, HostError):
        raise InvalidInput(
            {
                field: "we could not read that as a website. Type or paste its "
                "address, for example www.example.org"
            }
        )
    return found.name


def refuse_public_suffix(name: str, *, field: str = "host") -> None:
    """InvalidInput if `name` is a whole top-level domain or public suffix: an entry for it
    would cover every site that ends in it."""
    try:
        ipaddress.ip_address(name)
        return  # an address is one machine, not an ending
    except ValueError:
        pass
    if "." not in name.strip(".") or _suffixes().is_public(name):
        raise InvalidInput(
            {
                field: f"“{name}” is a whole ending shared by many websites, not "
                "one site: an entry for it would cover every website "
                f"ending in .{name}. Type the site's full name, for "
                "example www.example.org"
            }
        )
