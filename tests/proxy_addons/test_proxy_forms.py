"""The web-proxy form signatures (proxy_addons/proxy_forms.py) against pages shaped like the
scripts' own templates, pages held out while the signatures were written, and ordinary pages
with forms (see tests/proxy_addons/proxy_pages/README.md for where each comes from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.proxy_addons.proxy_forms import (
    MAX_CHARS,
    MAX_FORM_CHARS,
    MAX_FORMS,
    proxy_form_evidence,
)

PAGES = Path(__file__).parent / "proxy_pages"


def pages(folder: str) -> list[Path]:
    found = sorted((PAGES / folder).glob("*.html"))
    assert found, f"no pages in {folder}"
    return found


@pytest.mark.parametrize("page", pages("written_from"), ids=lambda p: p.stem)
def test_pages_the_signatures_were_written_from_are_recognised(page: Path) -> None:
    assert proxy_form_evidence(page.read_text()) is not None


@pytest.mark.parametrize("page", pages("held_out"), ids=lambda p: p.stem)
def test_held_out_proxy_pages_are_recognised(page: Path) -> None:
    assert proxy_form_evidence(page.read_text()) is not None


@pytest.mark.parametrize("page", pages("ordinary"), ids=lambda p: p.stem)
def test_ordinary_pages_with_forms_are_not_proxies(page: Path) -> None:
    assert proxy_form_evidence(page.read_text()) is None


@pytest.mark.parametrize(
    ("page", "script"),
    [
        ("written_from/glype-default.html", "glype"),
        ("written_from/phproxy-front.html", "phproxy"),
        ("written_from/cgiproxy-start.html", "cgiproxy"),
        ("held_out/php-proxy-fork.html", "web-proxy-form"),
    ],
)
def test_the_evidence_names_the_script(page: str, script: str) -> None:
    evidence = proxy_form_evidence((PAGES / page).read_text())
    assert evidence is not None
    assert evidence["script"] == script


def test_a_url_form_without_proxy_words_is_not_enough() -> None:
    html = (
        '<html><title>Chicken Tools</title><form action="index.php" method="post">'
        '<input name="url" placeholder="Url or search"></form></html>'
    )
    assert proxy_form_evidence(html) is None
    assert proxy_form_evidence(html.replace("Tools", "Proxy")) is not None


def test_a_password_field_means_a_sign_in_form_even_with_proxy_fields() -> None:
    html = (
        '<form action="includes/process.php?action=update"><input name="u">'
        '<input type="password" name="p"></form>'
    )
    assert proxy_form_evidence(html) is None


def test_only_the_start_of_a_long_page_is_read() -> None:
    form = (PAGES / "written_from/glype-default.html").read_text()
    assert proxy_form_evidence("<p>" + "x" * MAX_CHARS + "</p>" + form) is None
    assert proxy_form_evidence(form + "<p>" + "x" * MAX_CHARS + "</p>") is not None


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "<form",
        "<form action='\x00'><input name=",
        "<<<>>>" * 1000,
        "<form><input type=url name=u></form>",
    ],
)
def test_broken_html_is_no_error(junk: str) -> None:
    proxy_form_evidence(junk)


def test_only_the_first_forms_and_the_start_of_each_are_read() -> None:
    glype = (PAGES / "written_from/glype-default.html").read_text()
    ordinary = '<form action="/s"><input name="q"></form>'
    assert proxy_form_evidence(ordinary * (MAX_FORMS - 1) + glype) is not None
    assert proxy_form_evidence(ordinary * MAX_FORMS + glype) is None
    long_form = glype.replace(
        '<form action="includes', "<form " + " " * MAX_FORM_CHARS + 'action="includes'
    )
    assert proxy_form_evidence(long_form) is None
