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

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

Evidence = dict[str, str]

MAX_CHARS = 256 * 1024  # a proxy's own page is small; only the start of a page is read

_GLYPE_OPTIONS = frozenset({"encodeurl", "encodepage", "allowcookies", "stripjs",
                            "stripobjects", "tempcookies", "showform", "striptitle"})
_PHPROXY_FLAGS = frozenset({"include_form", "remove_scripts", "accept_cookies", "show_images",
                            "show_referer", "rotate13", "base64_encode", "strip_meta",
                            "strip_title", "session_cookies", "encrypt_page", "encrypt_url",
                            "remove_objects"})
_PHPROXY_FIELDS = frozenset({"____pgfa", "____pbavn", "__script_get_form"})
_PHPROXY_FORMS = frozenset({"poxy_url_form", "poxy_settings_form"})
_CGIPROXY_OPTIONS = frozenset({"rc", "rs", "fa", "br", "if"})
_CGIPROXY_ACTION = re.compile(r"/nph-[\w.-]*\.(cgi|pl)(/|$)", re.IGNORECASE)
# Field names that proxy front pages give the address box.
_URL_NAMES = frozenset({"url", "u", "q", "address", "addr", "link", "site", "target", "web"})
_URL_HINT = re.compile(r"\b(urls?\b|web ?address|website address|https?://|www\.|"
                       r"enter (a |the )?(site|website|address)\b)", re.IGNORECASE)
# "proxy" also inside a name (miniProxy, CroxyProxy, proxysite)
_PROXY_WORDS = re.compile(r"proxy|proxies|proxif|\b(unblock\w*|anonymous(ly)?|bypass\w*|"
                          r"hide your ip|surf (freely|privately))\b", re.IGNORECASE)
# An onsubmit that sends the browser to a script with the typed address appended (miniProxy).
_APPENDS_FIELD = re.compile(r"location(\.href)?\s*=\s*['\"][^'\"]*\?['\"]\s*\+\s*[^;]*\.value",
                            re.IGNORECASE)
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
    """Collects the forms, their fields and the page's visible words; nothing else."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.loose: _Form = _Form("")  # fields outside any form
        self._open: _Form | None = None
        self.words: list[str] = []
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
            self._field(values, "textarea" if tag == "textarea" else
                        values.get("type", "").lower())

    def _field(self, values: dict[str, str], kind: str) -> None:
        form = self._open if self._open is not None else self.loose
        name = values.get("name", "")
        form.names.add(name.lower())
        if kind == "password":
            form.password = True
        elif kind == "checkbox":
            form.checkboxes.add(name.lower())
        elif kind in _TEXT_TYPES or kind == "textarea":
            hint = " ".join(values.get(k, "") for k in ("placeholder", "aria-label", "title",
                                                         "value", "id"))
            form.text_fields.append((name, kind, hint))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            return
        self.words.append(data)
        if self._open is not None:
            self._open.label_text.append(data)


def read_forms(html: str) -> tuple[list[_Form], _Form, str]:
    reader = _Reader()
    try:
        reader.feed(html[:MAX_CHARS])
        reader.close()
    except Exception:  # html.parser is lenient; what it read before giving up is judged
        reader.words.append("")
    return reader.forms, reader.loose, " ".join(" ".join(reader.words).split())


def proxy_form_evidence(html: str) -> Evidence | None:
    """What marks this HTML page as a web-proxy script's own page (its URL form or the form it
    adds to proxied pages), else None. `html` is the decoded page text."""
    if "<form" not in html[:MAX_CHARS].lower() and "miniproxyformaction" not in \
            html[:MAX_CHARS].lower():
        return None
    forms, loose, words = read_forms(html)
    for form in (*forms, loose):
        found = _known_script(form)
        if found is not None:
            return found
    proxy_talk = _PROXY_WORDS.search(words)
    if proxy_talk is None:
        return None
    for form in forms:
        field_name = _asks_for_a_web_address(form)
        if field_name is not None:
            return {"script": "web-proxy-form", "field": field_name[:50],
                    "action": _short(form.action), "words": proxy_talk.group(0)[:50]}
    return None


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
    if (len(cgi) >= 3 and form.text_fields) or \
            (_CGIPROXY_ACTION.search(urlsplit(action).path) and form.text_fields):
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
    if kind == "url" or (name.lower() in _URL_NAMES and
                         (_URL_HINT.search(hint) or _URL_HINT.search(labels))):
        return name or kind
    if _URL_HINT.search(hint) and not re.search(r"\bsearch\b", hint, re.IGNORECASE):
        return name or "(unnamed)"
    return None


def _short(action: str) -> str:
    return action[:200]
