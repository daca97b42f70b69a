"""The README's model table is generated from the cards and must be current."""

from pathlib import Path

import pytest

from zoo import report

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_model_table_matches_cards():
    assert report.main(["--readme", str(README), "--check"]) == 0


def test_render_needs_markers():
    with pytest.raises(ValueError, match="markers"):
        report.render("no table here")
