"""Django's {# ... #} comment is single-line only: one left open at the end of its line is not a
comment at all, and its text shows on the page (it did on the evaluation page). Every template is
checked here; multi-line notes use {% comment %} ... {% endcomment %}."""
import re
from pathlib import Path

from django.template import engines

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _unclosed(text: str) -> list[int]:
    return [number for number, line in enumerate(text.splitlines(), 1)
            if re.search(r"\{#(?!.*#\})", line)]


def test_no_template_has_a_multi_line_hash_comment():
    offenders = {str(p.relative_to(TEMPLATES)): _unclosed(p.read_text()) for p in sorted(TEMPLATES.rglob("*.html"))}
    assert {name: lines for name, lines in offenders.items() if lines} == {}


def test_the_check_catches_what_django_would_render():
    text = "{# a note that\n goes on #}<p>body</p>{# one line #}"
    assert _unclosed(text) == [1]
    rendered = engines["django"].from_string(text).render({})
    assert "a note that" in rendered and "one line" not in rendered  # why the check exists
