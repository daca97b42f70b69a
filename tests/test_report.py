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


def test_every_hub_model_has_a_headline():
    """Each task's card yields a measured line; a task without one would leave its row blank."""
    from zoo import hub

    for name in [source.name for source in hub.list_sources() if source.origin == "hub"]:
        assert report.headline(hub.info(name)), name


def test_captioning_headline_reads_the_card():
    overall = {"exact_match": 0.5, "cider_d": 4.0, "bleu4": 60.0, "count": 10}
    card = {"task": "captioning", "decoding": {"default_beam_width": 3}, "dataset": {"test_style": "google"},
            "metrics": {"test": {"greedy": {"overall": overall}, "beam3": {"overall": overall}}},
            "baselines": {"nearest_neighbour_pixels": {"test": {"overall": {**overall, "exact_match": 0.25}}}},
            "ablation": {"test": {"beam3": {"overall": {**overall, "cider_d": 1.5}}}}}
    assert report.headline(card) == ("google style, never seen in training: exact match 0.500, CIDEr-D 4.00 "
                                     "(beam 3); 1-NN on pixels 0.250 / 4.00; without attention 0.500 / 1.50")
