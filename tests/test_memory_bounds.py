"""Ordinary input cannot exhaust memory: the command line streams in bounded batches, and the
signatures refuse work past their bounds before doing it. Peak memory is measured in a child
process (its maximum resident set size). Slow: `make test-slow`.

The stated figure: 1.5 GB, about 0.5 GB above what TensorFlow and a model take at rest (10,000
short lines to `zoo translate` used to peak at 7.7 GB; a 20000x20000 PNG sent to `caption_bytes`
decoded to 7.8 GB).
"""

import json
import random
import subprocess
import sys

import pytest

from recipe_helpers import ROOT, train_smoke_model
from zoo import hub

pytestmark = pytest.mark.slow

PEAK_LIMIT_KB = 1_500_000

MEASURED = """
import json, resource, subprocess, sys
with open(sys.argv[1], "rb") as stdin:
    done = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
print(json.dumps({"status": done.returncode, "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "lines": done.stdout.count(b"\\n"), "out": done.stdout.decode("utf-8", "replace")[-400:],
                  "err": done.stderr.decode("utf-8", "replace")[-2000:]}))
"""


def _measure(stdin_path, command):
    """Run `command` (stdin from `stdin_path`) in a child; its exit status, peak memory and output."""
    out = subprocess.run([sys.executable, "-c", MEASURED, str(stdin_path), *command], capture_output=True,
                         text=True, timeout=1800, cwd=str(ROOT))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif("translation-gru-de-en" not in hub.list_models(), reason="no translation model")
def test_zoo_translate_of_10000_lines_stays_under_the_bound(tmp_path):
    rng = random.Random(0)
    words = "Ich du wir Hund Katze Haus Baum sehe habe ist gut schön heute morgen".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) + "." for _ in range(10_000)]
    lines[5_000] = " ".join(rng.choice(words) for _ in range(120))
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(lines) + "\n")
    run = _measure(source, [sys.executable, "-m", "zoo.cli", "translate", "translation-gru-de-en", "--beam", "4"])
    assert run["status"] == 0, run["err"]
    assert run["lines"] == 10_000
    assert "line 5001 has 120 tokens" in run["err"]
    assert run["peak_kb"] < PEAK_LIMIT_KB, f"peak {run['peak_kb'] / 1e6:.2f} GB"


def test_caption_bytes_refuses_a_decompression_bomb_before_decoding(tmp_path):
    import struct
    import zlib

    root = tmp_path / "hub"
    train_smoke_model("captioning", ["--max-examples", "96", "--epochs", "1", "--units", "16",
                                     "--embedding-dim", "8", "--filters", "4,4,4,8", "--batch-size", "32",
                                     "--no-ablation"], "captioning-bounds", root)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(b"\x00" * 20001) for _ in range(20000)) + rows.flush()  # about 390 KB
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    runner = tmp_path / "send.py"
    runner.write_text(
        "import sys, tensorflow as tf\n"
        "serving = tf.saved_model.load(sys.argv[1])\n"
        "data = open(sys.argv[2], 'rb').read()\n"
        "try:\n"
        "    serving.signatures['caption_bytes'](image_bytes=tf.constant([data]))\n"
        "    print('decoded')\n"
        "except tf.errors.InvalidArgumentError as error:\n"
        "    print('refused', 'declares more than' in error.message, error.message[:300].replace(chr(10), ' '))\n")
    run = _measure(tmp_path / "bomb.png", [
        sys.executable, str(runner), str(root / "captioning-bounds" / hub.SERVING_DIR), str(tmp_path / "bomb.png")])
    assert run["status"] == 0, run["err"]
    assert "refused True" in run["out"], run["out"]
    assert run["peak_kb"] < PEAK_LIMIT_KB, f"peak {run['peak_kb'] / 1e6:.2f} GB"
