"""KitError's kind (what the fuzz corpus compares) and the one rule for quoting a foreign message."""
from converter.errors import FOREIGN_CHARS, KitError, foreign_text


class _Refused(KitError):
    def __init__(self, problem: str):
        super().__init__(problem, "fix it")


def _raise_here(message: str) -> KitError:
    return KitError(message, "fix")


def test_kind_is_the_raise_site_unless_a_code_is_given():
    assert _raise_here("one wording").kind == _raise_here("another wording").kind == \
        "KitError@tests.unit.test_errors:_raise_here"
    assert KitError("anything", code="empty-file").kind == "empty-file"
    # a subclass's own __init__ is skipped: the site is where it was built, and its class names it
    assert _Refused("x").kind == "_Refused@tests.unit.test_errors:test_kind_is_the_raise_site_unless_a_code_is_given"


def test_foreign_text_is_one_line_cut_to_one_length():
    long = ValueError("first line\n  second " + "x" * 1000)
    text = foreign_text(long)
    assert "\n" not in text and text.startswith("first line second x") and len(text) == FOREIGN_CHARS
    assert foreign_text(long, with_type=True).startswith("ValueError: first line")
    assert foreign_text("build log ... " + "y" * 500 + " the cause", tail=True).endswith("the cause")
    assert len(foreign_text("a" * 1000, tail=True)) == FOREIGN_CHARS
