"""`zoo classify` on the shipped time-series classifier: files in, one class per series out."""

import numpy as np
import pytest

from zoo import hub

SHIPPED = "timeseries-classification-japanesevowels"

pytestmark = pytest.mark.skipif(SHIPPED not in hub.list_models(), reason=f"{SHIPPED} is not in saved_models/")


@pytest.fixture(scope="module")
def utterances():
    from zoo.data import timeseries

    test = timeseries.load_ucr("JapaneseVowels")["test"]
    return test.series[:3], test.labels[:3]


def test_classify_csv_and_ts_files(tmp_path, utterances, capsys):
    from zoo import cli

    series, labels = utterances
    files = []
    for number, values in enumerate(series[:2]):
        path = tmp_path / f"utterance-{number}.csv"
        np.savetxt(path, values, delimiter=",", header=",".join(f"c{i}" for i in range(12)), comments="")
        files.append(str(path))
    ts = tmp_path / "two_TEST.ts"
    ts.write_text("@problemName two\n@univariate false\n@dimensions 12\n@classLabel false\n@data\n" + "".join(
        ":".join(",".join(f"{v:.6f}" for v in values[:, d]) for d in range(12)) + "\n" for values in series[1:3]))
    assert cli.main(["classify", SHIPPED, *files, str(ts)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "class\tprobability\tsource"
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[2] for row in rows] == files + [f"{ts}#1", f"{ts}#2"]
    assert rows[1][0] == rows[2][0]  # the same utterance, from CSV and from .ts
    assert all(0.0 <= float(row[1]) <= 1.0 for row in rows)
    assert [row[0] for row in rows[:2]] == labels[:2]


@pytest.mark.parametrize("content, problem", [
    ("", "empty"),
    ("1,2,3\n4,5,6\n", "feature"),
    (",".join(["1"] * 12) + "\n", "time step"),
    ("1,2\nx,y\n", "number"),
])
def test_classify_refuses_bad_files_with_exit_2(tmp_path, capsys, content, problem):
    from zoo import cli

    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert cli.main(["classify", SHIPPED, str(path)]) == 2
    captured = capsys.readouterr()
    assert problem in captured.err and captured.out == ""


def test_classify_names_a_model_of_another_task(capsys):
    from zoo import cli

    assert cli.main(["classify", "sentiment-bilstm-mr", "x.csv"]) == 2
    assert "time-series classifiers" in capsys.readouterr().err
