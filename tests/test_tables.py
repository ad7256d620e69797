"""Every generated table in the documents is what the committed files give today."""

import pytest

from landscape.experiments.tables import DOCUMENTS, ROOT, TABLES, _load, generated


@pytest.mark.parametrize("document", DOCUMENTS)
def test_generated_blocks_are_current(document):
    _load()
    text = (ROOT / document).read_text()
    assert generated(text) == text, f"run `landscape tables` and commit {document}"


def test_every_registered_table_is_in_a_document():
    _load()
    texts = "".join((ROOT / d).read_text() for d in DOCUMENTS)
    assert all(f"<!-- generated: {name} -->" in texts for name in TABLES)


def test_generated_rewrites_only_between_the_markers():
    TABLES["toy"] = lambda: "| a |\n| --- |"
    try:
        text = "before\n<!-- generated: toy -->\nstale\n<!-- end generated -->\nafter\n"
        assert generated(text) == (
            "before\n<!-- generated: toy -->\n| a |\n| --- |\n<!-- end generated -->\nafter\n"
        )
    finally:
        del TABLES["toy"]
