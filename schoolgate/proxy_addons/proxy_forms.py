"""Recognise a web-proxy script's own page by its HTML form (the form that posts a web address
to the script, and its option fields), whatever its URL looks like: a pure function for
CheckPages. The URL shapes are in `proxy_scripts`; this catches a renamed script, path-style
or encrypted URLs, and front pages that only take a URL.

Signatures, each written from the script's own templates (markup read, not copied):
- Glype 1.4 (themes/default/main.php, framedForm.inc.php; includes/settings.php): a form
  posting to `includes/process.php?action=update` with a text field `u`, and option check
  boxes `encodeURL`, `encodePage`, `allowCookies`, `stripJS`, `stripObjects`...;
- PHProxy 0.5 and forks (files/php/index.inc.php; `url_var_name` q, `flags_var_name` hl): a
  form with the field `q` and check boxes `hl[include_form]`, `hl[remove_scripts]`...; its
  hidden `____pgfa` / `____pbavn` fields; the forms it adds to proxied pages (`poxy_url_form`);
- CGIProxy 2.x (nph-proxy.cgi, show_start_form / mini_start_form): the form `URLform` with the
  field `URL`, and the check boxes rc, rs, fa, br, if; an action under `nph-*.cgi`;
- miniProxy (miniProxy.php): the hidden `miniProxyFormAction` field it adds to every form, and
  its landing form, whose onsubmit sends the browser to `<script>?` + the typed address;
- any other front page (php-proxy's "Url or search", CroxyProxy-like pages): one form whose
  only text field asks for a web address (a `url` field, `type=url`, or a placeholder or label
  naming a URL or web address), on a page that talks about a proxy, unblocking or anonymity.
A search box or a sign-in form never matches: a form with a password field is never a proxy
form, and a search field alone (q, "Search") does not ask for a web address.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

Evidence = dict[str, str]

MAX_CHARS = 256 * 1024  # a proxy's own page is small; only the start of a page is read
MAX_FORM_CHARS = 16 * 1024  # and its form smaller still: only the start of each form is read
MAX_FORMS = 20  # a proxy's page has one or two forms

_GLYPE_OPTIONS = frozenset(
    {
        "encodeurl",
        "encodepage",
        "allowcookies",
        "stripjs",
        "stripobjects",
        "tempcookies",
        "showform",
        "striptitle",
    }
)
_PHPROXY_FLAGS = frozenset(
    {
        "include_form",
        "remove_scripts",
        "accept_cookies",
        "show_images",
        "show_referer",
        "rotate13",
        "base64_encode",
        "strip_meta",
        "strip_title",
        "session_cookies",
        "encrypt_page",
        "encrypt_url",
        "remove_objects",
    }
)
_PHPROXY_FIELDS = frozenset({"____pgfa", "____pbavn", "__script_get_form"})
_PHPROXY_FORMS = frozenset({"poxy_url_form", "poxy_settings_form"})
_CGIPROXY_OPTIONS = frozenset({"rc", "rs", "fa", "br", "if"})
_CGIPROXY_ACTION = re.compile(r"/nph-[\w.-]*\.(cgi|pl)(/|$)", re.IGNORECASE)
# Field names that proxy front pages give the address box.
_URL_NAMES = frozenset({"url", "u", "q", "address", "addr", "link", "site", "target", "web"})
_URL_HINT = re.compile(
    r"\b(urls?\b|web ?address|website address|https?://|www\.|"
    r"enter (a |the )?(site|website|address)\b)",
    re.IGNORECASE,
)
# "proxy" also inside a name (miniProxy, CroxyProxy, proxysite)
_PROXY_WORDS = re.compile(
    r"proxy|proxies|proxif|\b(unblock\w*|anonymous(ly)?|bypass\w*|"
    r"hide your ip|surf (freely|privately))\b",
    re.IGNORECASE,
)
# An onsubmit that sends the browser to a script with the typed address appended (miniProxy).
_APPENDS_FIELD = re.compile(
    r"location(\.href)?\s*=\s*['\"][^'\"]*\?['\"]\s*\+\s*[^;]*\.value", re.IGNORECASE
)
_TEXT_TYPES = frozenset({"", "text", "url", "search"})


@dataclass
class _Form:
    action: str
    names: set[str] = field(default_factory=set)  # every field name, lower case
    checkboxes: set[str] = field(default_factory=set)
    text_fields: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, hint
    password: bool = False
    onsubmit: str = ""
    label_text: list[str] = field(default_factory=list)
    form_names: set[str] = field(default_factory=set)  # the form's name and id


class _Reader(HTMLParser):
    """Collects one piece of a page's forms, their fields and their visible words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._open: _Form | None = None
        self._skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "form":
            self._open = _Form(values.get("action", ""))
            self._open.form_names = {values.get("name", "").lower(), values.get("id", "").lower()}
            self._open.onsubmit = values.get("onsubmit", "")[:2000]
            self.forms.append(self._open)
        elif tag in ("input", "textarea"):
            self._field(values, "textarea" if tag == "textarea" else values.get("type", "").lower())

    def _field(self, values: dict[str, str], kind: str) -> None:
        form = self._open
        if form is None:
            return
        name = values.get("name", "")
        form.names.add(name.lower())
        if kind == "password":
            form.password = True
        elif kind == "checkbox":
            form.checkboxes.add(name.lower())
        elif kind in _TEXT_TYPES or kind == "textarea":
            hint = " ".join(
                values.get(k, "") for k in ("placeholder", "aria-label", "title", "value", "id")
            )
            form.text_fields.append((name, kind, hint))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            return
        if self._open is not None:
            self._open.label_text.append(data)


# A page is read in pieces, not parsed whole (html.parser takes a quarter of a second on a long
# article): the forms (forms do not nest), then, only if one asks for a web address, the words.
_NOT_WORDS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_MINIPROXY_FIELD = re.compile(r"name\s*=\s*[\"']?miniProxyFormAction\b", re.IGNORECASE)


def read_forms(html: str) -> list[_Form]:
    """The page's first MAX_FORMS forms, each read from its first MAX_FORM_CHARS."""
    forms: list[_Form] = []
    lowered = html.lower()
    start = lowered.find("<form")
    while start >= 0 and len(forms) < MAX_FORMS:
        end = lowered.find("</form", start, start + MAX_FORM_CHARS)
        stop = end if end >= 0 else start + MAX_FORM_CHARS
        reader = _Reader()
        # html.parser is lenient; what it read before giving up (if ever) is judged
        with contextlib.suppress(Exception):
            reader.feed(html[start:stop])
            reader.close()
        forms.extend(reader.forms)
        start = lowered.find("<form", stop)
    return forms


def page_words(html: str) -> str:
    """The page's visible words (and its title), roughly: no scripts, styles or tags."""
    return " ".join(_TAG.sub(" ", _NOT_WORDS.sub(" ", html)).split())


def proxy_form_evidence(html: str) -> Evidence | None:
    """What marks this HTML page as a web-proxy script's own page (its URL form or the form it
    adds to proxied pages), else None. `html` is the decoded page text; only its first
    MAX_CHARS are read."""
    html = html[:MAX_CHARS]
    if _MINIPROXY_FIELD.search(html):
        return {"script": "miniproxy", "field": "miniProxyFormAction"}
    forms = read_forms(html)
    for form in forms:
        found = _known_script(form)
        if found is not None:
            return found
    asking = [(form, name) for form in forms if (name := _asks_for_a_web_address(form)) is not None]
    if not asking:
        return None
    proxy_talk = _PROXY_WORDS.search(page_words(html))
    if proxy_talk is None:
        return None
    form, field_name = asking[0]
    return {
        "script": "web-proxy-form",
        "field": field_name[:50],
        "action": _short(form.action),
        "words": proxy_talk.group(0)[:50],
    }


def _known_script(form: _Form) -> Evidence | None:
    action = form.action.lower()
    names = form.names
    if "miniproxyformaction" in names:
        return {"script": "miniproxy", "field": "miniProxyFormAction"}
    if form.password:
        return None
    if "u" in names and urlsplit(action).path.endswith("includes/process.php"):
        return {"script": "glype", "action": _short(form.action)}
    glype = form.checkboxes & _GLYPE_OPTIONS
    if len(glype) >= 2:
        return {"script": "glype", "options": ",".join(sorted(glype))}
    flags = {n[3:-1] for n in names if n.startswith("hl[") and n.endswith("]")}
    if flags & _PHPROXY_FLAGS or names & _PHPROXY_FIELDS or form.form_names & _PHPROXY_FORMS:
        return {"script": "phproxy", "options": ",".join(sorted(flags & _PHPROXY_FLAGS))[:100]}
    if "urlform" in form.form_names and "url" in names:
        return {"script": "cgiproxy", "form": "URLform"}
    cgi = form.checkboxes & _CGIPROXY_OPTIONS
    if (len(cgi) >= 3 and form.text_fields) or (
        _CGIPROXY_ACTION.search(urlsplit(action).path) and form.text_fields
    ):
        return {"script": "cgiproxy", "action": _short(form.action)}
    return None


def _asks_for_a_web_address(form: _Form) -> str | None:
    """The name of the one field of this form that asks for a web address, else None."""
    if form.password:
        return None
    fields = [f for f in form.text_fields if f[1] != "textarea"]
    if len(fields) != 1 or any(f[1] == "textarea" for f in form.text_fields):
        return None
    name, kind, hint = fields[0]
    if _APPENDS_FIELD.search(form.onsubmit):
        return name or "(unnamed)"
    labels = " ".join(form.label_text)
    if kind == "url" or (
        name.lower() in _URL_NAMES and (_URL_HINT.search(hint) or _URL_HINT.search(labels))
    ):
        return name or kind
    if _URL_HINT.search(hint) and not re.search(r"\bsearch\b", hint, re.IGNORECASE):
        return name or "(unnamed)"
    return None


def _short(action: str) -> str:
    return action[:200]
