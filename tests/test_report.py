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


def test_sentiment_table_marks_each_held_out_floor(monkeypatch):
    from zoo import report

    def entry(kind, model, ngram, tfidf):
        return {"kind": kind, "model": {"accuracy": model, "examples": 10},
                "ngram_path_only": {"accuracy": ngram}, "tfidf_logistic": tfidf, "lexicon_sum": 0.5}

    card = {"task": "sentiment", "parameters": 5, "command": "python recipes/sentiment.py",
            "training": {"epochs_run": 3, "best_epoch": 2, "seconds": 60,
                         "hardware": {"cpu": "AMD EPYC", "cpu_count": 2}},
            "metrics": {"test": {"accuracy": 0.8, "examples": 10},
                        "domains": {"mr": entry("in-domain test split", 0.8, 0.81, 0.78),
                                    "tweets": entry("held-out domain", 0.75, 0.70, 0.70),
                                    "yelp": entry("held-out domain", 0.72, 0.70, 0.70),
                                    "nyt": entry("held-out domain", 0.75, 0.76, 0.70)},
                        "leave_one_domain_out": {"mr": {**entry("", 0.7, 0.6, 0.6),
                                                        "trained_on": ["clothing"]}}}}
    monkeypatch.setattr(report, "_hub_cards", lambda task: [("sentiment-x", card)])
    rows = {line.split(" | ")[0].strip("| "): line for line in report.sentiment_tables().splitlines()
            if line.startswith("| ") and "test set" not in line}
    assert rows["mr"].endswith("| — |")
    assert rows["tweets"].endswith("**met** |")       # 5 points above TF-IDF+LR, above the n-gram path
    assert rows["yelp"].endswith("**missed** |")      # 2 points above
    assert rows["nyt"].endswith("**missed** |")       # below its n-gram path
    assert rows["mr (trained on clothing only)"].endswith("**met** |")
    assert "3 held-out domains, mean accuracy 0.7400 (TF-IDF+LR 0.7000)" in report.headline(card)


def test_captioning_table_marks_each_rotation_floor(monkeypatch):
    from zoo import report

    def scores(overall, base, flag=None):
        groups = {"base": {"exact_match": base, "cider_d": 1.0, "count": 5}}
        if flag is not None:
            groups["flag"] = {"exact_match": flag, "cider_d": 2.0, "count": 2}
        return {"test": {"overall": {"exact_match": overall, "cider_d": 3.0, "count": 7}, "groups": groups},
                "heldout_emoji": {"cider_d": 0.5, "count": 3}}

    def rotation(model, neighbour, floors):
        return {"model": model, "nearest_neighbour_pixels": neighbour, "decoder_alone": model,
                "floors": floors, "meets_floors": all(r["above"] for r in floors.values()),
                "retrieval_weight_choice": {"weight": 20.0}}

    won = rotation(scores(0.5, 0.4, 0.9), scores(0.3, 0.3, 0.8),
                   {"overall exact_match": {"above": True}, "base exact_match": {"above": True},
                    "flag exact_match": {"above": True}})
    lost_flags = rotation(scores(0.5, 0.4, 0.7), scores(0.3, 0.3, 0.8),
                          {"overall exact_match": {"above": True}, "flag exact_match": {"above": False}})
    no_flags = rotation(scores(0.5, 0.4), scores(0.3, 0.3), {"overall exact_match": {"above": True}})
    card = {"task": "captioning", "parameters": 5, "command": "python recipes/captioning.py",
            "training": {"epochs_run": 3, "best_epoch": 2, "seconds": 60, "rotation_seconds": {"google": 600},
                         "hardware": {"cpu": "AMD EPYC", "cpu_count": 2}},
            "leave_one_style_out": {"rotations": {"google": won, "twitter": lost_flags, "fluent": no_flags},
                                    "mean": {"rotations": 3, "rotations_meeting_floors": 2,
                                             "model": {"overall": {"exact_match": 0.5, "cider_d": 3.0}},
                                             "nearest_neighbour_pixels": {"overall": {"exact_match": 0.3,
                                                                                      "cider_d": 3.0}}}}}
    monkeypatch.setattr(report, "_hub_cards", lambda task: [("captioning-x", card)])
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line
            for line in report.captioning_tables().splitlines() if line.startswith("| ") and "group" not in line}
    assert rows[("google", "flag")].endswith("**met** |")
    assert rows[("twitter", "flag")].endswith("**missed** |")
    assert rows[("twitter", "overall")].endswith("**met** |")
    assert ("fluent", "flag") not in rows  # Fluent draws no flags: no row, no floor
    assert rows[("fluent", "base")].endswith("— |")  # no base floor recorded for it
    assert "floors met in 2 of 3 rotations" in report.headline(card)


def test_speech_headline_and_table_show_the_closed_vocabulary_beside_dtw(monkeypatch):
    scores = {"greedy": {"accuracy": 0.1, "count": 37}, "beam8": {"accuracy": 0.2, "count": 37},
              "closed_vocabulary": {"accuracy": 0.3, "count": 37, "vocabulary": 37}}
    card = {"task": "speech", "decoding": {"beam_width": 8},
            "metrics": {"test": {"beam8": {"cer": 0.2}}, "asterisk_digits_letters": scores},
            "baselines": {"dtw": {"asterisk_digits_letters": {"accuracy": 0.4}}},
            "comparison": [{"set": "asterisk_digits_letters", "model_greedy": scores["greedy"],
                            "model_beam": scores["beam8"], "model_closed_vocabulary": scores["closed_vocabulary"],
                            "dtw": {"accuracy": 0.4}}],
            "verdicts": ["floor: ..."], "training": {"seconds": 60, "epochs_run": 1, "best_epoch": 1}}
    assert report._speech_headline(card) == ("synthetic held-out voices CER 0.200, real digits and letters "
                                              "accuracy 0.200, 0.300 from a closed vocabulary (1-NN DTW 0.400)")
    monkeypatch.setattr(report, "_hub_cards", lambda task: [("speech-x", card)])
    table = report.speech_tables()
    assert "| asterisk_digits_letters | 37 | accuracy 0.100 | accuracy 0.200 | accuracy 0.300 | — | accuracy 0.400 |" \
        in table
    assert "CER by kind" not in table  # a card without a breakdown shows none
    card["metrics"]["test"]["beam8"]["by_kind"] = {"digit": {"cer": 0.01, "count": 5}, "sentence": {"cer": 0.3, "count": 9}}
    assert "CER by kind of text, synthetic test (held-out voices and sentences), beam8: digit 0.010 (5), " \
           "sentence 0.300 (9)." in report.speech_tables()
