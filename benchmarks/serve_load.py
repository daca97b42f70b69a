"""Load test of `zoo serve` on loopback: throughput, latency, errors and memory, batching on and off.

The server runs as its own process (`python -m zoo.cli serve ...`, bound to
127.0.0.1) holding the sentiment and translation models; this script is the
client: 1, 8, 32 and 128 concurrent connections (HTTP/1.1 keep-alive, one
request at a time each), one text per request, the texts cycling through a
fixed list. Every level is bounded in requests (`--requests`,
`--translation-requests`) and in time (`--max-seconds`). The whole run is
done twice: with batching (the default) and with `--no-batching` (each
request its own call); the server's resident memory is read from /proc
before and after each run.

The issue's floors are checked and printed as met / missed:

- with batching, sentiment throughput at 32 clients >= 3x the one-by-one throughput;
- zero errors at every level (all are below the queue limit, 256 requests);
- server RSS grows < 10% over 10,000 requests (the batching run; checked only when the run
  sent at least 10,000 requests, i.e. with the default `--requests`).

The client shares the machine with the server (loopback only), so the numbers
are those of both on the same cores; the CPU model, its count and the load
average at the start are recorded with the results.

Usage:

    python benchmarks/serve_load.py                          # the full run (several minutes)
    python benchmarks/serve_load.py --requests 200 --translation-requests 40 --output /tmp/serve.md
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_OUTPUT = ROOT / "benchmarks" / "serve_load_results.md"

MODELS = {"sentiment": "sentiment-bilstm-mr", "translation": "translation-gru-de-en"}
CONCURRENCY = (1, 8, 32, 128)

SENTENCES = [
    "a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés.",
    "an utterly charming and hilarious film that reminded me why i love going to the movies.",
    "it's a lovely film with lovely performances.", "a dull, simple-minded and stereotypical tale.",
    "quietly devastating.", "the acting is fine but the script is a mess from start to finish.",
    "one of the year's best films.", "too long, too loud and not nearly funny enough.",
    "a thoughtful, unpretentious drama.", "i wanted to like it, but i didn't.",
    "an exhilarating ride from beginning to end.", "nothing new, nothing bold, nothing worth seeing.",
    "smart, funny and touching.", "the dialogue is painfully bad.", "it never quite comes together.",
]
GERMAN = [
    "Ich bin müde.", "Wo ist der Bahnhof?", "Das Wetter ist heute schön.", "Kannst du mir helfen?",
    "Wir gehen morgen ins Kino.", "Der Zug kommt um zehn Uhr an.", "Ich habe keine Zeit.",
    "Das Buch liegt auf dem Tisch.",
]


# -- the machine and the server ------------------------------------------------------------------


def rss_mib(pid):
    """Resident memory of process `pid` in MiB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port, batching, options):
    command = [sys.executable, "-m", "zoo.cli", "serve", *MODELS.values(), "--port", str(port),
               "--request-timeout-s", str(options.request_timeout_s)]
    if not batching:
        command.append("--no-batching")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server stopped: " + process.stderr.read().decode("utf-8", "replace")[-2000:])
        try:
            status, _ = asyncio.run(one_request(port, "GET", f"/v1/models/{MODELS['sentiment']}"))
            if status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not start within 300 s")


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the client: plain HTTP/1.1 over asyncio streams (little CPU of its own) ---------------------


class Connection:
    """One keep-alive HTTP/1.1 connection sending one request at a time."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method, path, body=b""):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("ascii")
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == "content-length":
                length = int(value.strip())
            elif key.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def one_request(port, method, path, body=b""):
    connection = Connection(port)
    try:
        return await connection.request(method, path, body)
    finally:
        connection.close()


async def run_level(port, model, bodies, clients, total, max_seconds):
    """`total` requests (at most `max_seconds`) from `clients` concurrent connections."""
    path = f"/v1/models/{model}:predict"
    latencies, errors, examples = [], 0, []
    issued = 0
    start = time.perf_counter()
    deadline = start + max_seconds

    async def client():
        nonlocal issued, errors
        connection = Connection(port)
        try:
            while issued < total and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                sent = time.perf_counter()
                try:
                    status, payload = await connection.request("POST", path, body)
                except (OSError, asyncio.IncompleteReadError, ConnectionError) as error:
                    status, payload = None, str(error).encode()
                    connection.close()
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    errors += 1
                    if len(examples) < 3:
                        examples.append(f"{status}: {payload[:200].decode('utf-8', 'replace')}")
        finally:
            connection.close()

    await asyncio.gather(*[client() for _ in range(clients)])
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "clients": clients, "requests": len(latencies), "seconds": elapsed,
        "throughput": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
        "errors": errors, "error_examples": examples,
    }


def request_bodies(task):
    texts = SENTENCES if task == "sentiment" else GERMAN
    return [json.dumps({"instances": [text]}).encode("utf-8") for text in texts]


def measure_mode(batching, options):
    """One server (batching on or off): every model at every concurrency, RSS before and after."""
    port = free_port()
    process = start_server(port, batching, options)
    try:
        # Warm-up at every level: the first calls of each batch size allocate what later calls reuse,
        # so the RSS read next is the steady state and its growth over the run measures a leak.
        for task, model in MODELS.items():
            for clients in options.concurrency:
                asyncio.run(run_level(port, model, request_bodies(task), clients, max(40, 2 * clients), 60))
        rss_before = rss_mib(process.pid)
        results, sent = [], 0
        for task, model in MODELS.items():
            total = options.requests if task == "sentiment" else options.translation_requests
            for clients in options.concurrency:
                level = asyncio.run(run_level(port, model, request_bodies(task), clients, total, options.max_seconds))
                level["task"] = task
                results.append(level)
                sent += level["requests"]
                print(f"  batching {'on ' if batching else 'off'} {task:11s} {clients:4d} clients: "
                      f"{level['throughput']:8.1f} req/s  p50 {level['p50_ms']:8.1f} ms  p99 {level['p99_ms']:8.1f} ms  "
                      f"errors {level['errors']}", flush=True)
        rss_after = rss_mib(process.pid)
        _, stats = asyncio.run(one_request(port, "GET", "/zoo/stats"))
    finally:
        stop_server(process)
    return {"batching": batching, "levels": results, "rss_before": rss_before, "rss_after": rss_after,
            "requests_sent": sent, "stats": json.loads(stats)}


# -- the report ------------------------------------------------------------------------------------


def floors(on, off):
    """(description, met: True/False/None for not checked, detail) of each of the issue's floors."""
    def throughput(run, task, clients):
        return next((l["throughput"] for l in run["levels"] if l["task"] == task and l["clients"] == clients), None)

    checks = []
    batched, alone = throughput(on, "sentiment", 32), throughput(off, "sentiment", 32)
    if batched is not None and alone:
        ratio = batched / alone
        checks.append(("sentiment at 32 clients: batching >= 3x one-by-one throughput", ratio >= 3,
                       f"{batched:.1f} vs {alone:.1f} req/s = {ratio:.2f}x"))
    else:
        checks.append(("sentiment at 32 clients: batching >= 3x one-by-one throughput", None, "32 clients not run"))
    errors = sum(l["errors"] for run in (on, off) for l in run["levels"])
    checks.append(("zero errors below the queue limit (256)", errors == 0, f"{errors} errors"))
    growth = on["rss_after"] / on["rss_before"] - 1
    detail = f"{on['rss_before']:.0f} -> {on['rss_after']:.0f} MiB ({100 * growth:+.1f}%) over {on['requests_sent']:,} requests"
    checks.append(("server RSS growth < 10% over 10,000 requests",
                   (growth < 0.10) if on["requests_sent"] >= 10_000 else None, detail))
    return checks


def report(runs, checks, options, started, load):
    from zoo.machine import cpu_model

    cpu, count = cpu_model(), os.cpu_count()
    lines = [
        "# `zoo serve` under load",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} with `{' '.join(['python benchmarks/serve_load.py', *sys.argv[1:]])}`.",
        "",
        f"- CPU: {cpu}, {count} processors; load average at the start {load}; "
        f"Python {platform.python_version()}",
        f"- Server: `zoo serve {' '.join(MODELS.values())} --request-timeout-s {options.request_timeout_s:g}` "
        "(defaults otherwise: batch window 3 ms, at most 64 rows a call, 2 workers, queue 256); "
        "client and server on the same machine, over loopback, one request at a time per connection, "
        "one text per request.",
        f"- Requests per level: sentiment {options.requests:,}, translation {options.translation_requests:,}, "
        f"each level at most {options.max_seconds:g} s.",
        "",
        "| model | batching | clients | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for level in run["levels"]:
            lines.append(f"| {MODELS[level['task']]} | {'on' if run['batching'] else 'off'} | {level['clients']} | "
                         f"{level['requests']:,} | {level['throughput']:.1f} | {level['p50_ms']:.1f} | "
                         f"{level['p99_ms']:.1f} | {level['errors']} |")
    lines += ["", "| batching | server RSS before | after | requests | mean requests per call (sentiment, translation) |",
              "|---|---:|---:|---:|---|"]
    for run in runs:
        signatures = run["stats"].get("signatures", {})
        means = ", ".join(str(signatures.get(f"{m}/serving_default", {}).get("mean_requests_per_call"))
                          for m in MODELS.values())
        lines.append(f"| {'on' if run['batching'] else 'off'} | {run['rss_before']:.0f} MiB | "
                     f"{run['rss_after']:.0f} MiB | {run['requests_sent']:,} | {means} |")
    lines += ["", "## Floors", ""]
    for description, met, detail in checks:
        verdict = "not checked" if met is None else ("met" if met else "MISSED")
        lines.append(f"- {description}: **{verdict}** ({detail})")
    examples = [e for run in runs for l in run["levels"] for e in l["error_examples"]]
    if examples:
        lines += ["", "Errors seen (first few):", ""] + [f"- `{e}`" for e in examples[:6]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2500,
                        help="sentiment requests per concurrency level (default 2,500: 10,000 in all)")
    parser.add_argument("--translation-requests", type=int, default=200,
                        help="translation requests per concurrency level (default 200)")
    parser.add_argument("--concurrency", type=lambda s: tuple(int(c) for c in s.split(",")), default=CONCURRENCY,
                        help="comma-separated client counts (default 1,8,32,128)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="most seconds per level (default 120)")
    parser.add_argument("--request-timeout-s", type=float, default=120.0,
                        help="the server's request timeout (default 120: slow one-by-one translation at "
                             "128 clients is measured, not cut off)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"results file (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    options = parser.parse_args(argv)
    if any(c >= 256 for c in options.concurrency):
        parser.error("keep every concurrency below the server's queue limit (256)")
    started = datetime.datetime.now()
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    runs = []
    for batching in (True, False):
        print(f"batching {'on' if batching else 'off'}:", flush=True)
        runs.append(measure_mode(batching, options))
    checks = floors(runs[0], runs[1])
    text = report(runs, checks, options, started, load)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(text, encoding="utf-8")
    print()
    for description, met, detail in checks:
        print(f"{'not checked' if met is None else ('met' if met else 'MISSED'):12s} {description} ({detail})")
    print(f"results written to {options.output}")
    return 0 if all(met is not False for _, met, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
