"""Importing zoo is cheap and has no side effects."""

import subprocess
import sys


def test_import_zoo_loads_no_tensorflow_and_touches_nothing(tmp_path):
    script = (
        "import os, sys, time\n"
        "start = time.time()\n"
        "import zoo\n"
        "elapsed = time.time() - start\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'torch', 'music21') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert elapsed < 1.0, elapsed\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
        "print(zoo.__version__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr == ""


def test_lazy_attributes():
    import zoo

    assert callable(zoo.list_models) and callable(zoo.load)
    assert "layers" in dir(zoo)
    try:
        zoo.no_such_thing
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")
