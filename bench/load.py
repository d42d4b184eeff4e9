"""Load: searchV2 requests per second and latency through /sync, at concurrency 1, 4, 16 and 64.

    python bench/load.py [--workers 2] [--designs 300] [--requests 200] [--seconds 30]
    python bench/load.py --generator hey --requests 2000   # the levels sent by hey to /v1/search
    python bench/load.py --levels --soak 20000      # a soak: 20,000 requests at concurrency 64

Starts ``imagesearch serve`` on 127.0.0.1 over a generated demo catalog
(``--designs`` designs, each sold by one to three shops), creates an app, and
sends md5-signed searchV2 requests (as the TOP SDK does) from an asyncio load
generator in this process.  Each level stops after ``--requests`` requests or
``--seconds`` seconds, whichever comes first.  Requests that admission control
turns away (``ApiCallLimit``: every search slot taken) are counted as shed,
apart from the latencies of admitted ones.  Requests are built (base64,
signature) before the clock starts: only the round trip is timed.

With ``--generator hey``, the levels are sent by ``hey`` (Go; ``apt install hey``) to
``/v1/search`` instead: on a 2-core machine the Python generator takes a core of its own, and
its queue inflates the tail latency it measures.

With ``--soak N``, one more level: N requests at concurrency 64 while the
resident memory of the server's processes (the parent and its workers) is
sampled every second; the report gives the samples after the first tenth of
the run and how far the last tenth strays from the middle (flat: within 10 %).

Then, at concurrency 1, each query goes once through /sync (a plain
keep-alive http.client connection) and once straight to ``SearchEngine.search``
in this process, interleaved: the report shows what the HTTP layer adds (the
/sync p50 minus the engine's p50).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
from common import RESULTS, machine, status_bytes, today

from imagesearch.config import load_settings
from imagesearch.http.signing import signature
from imagesearch.search.engine import SearchEngine
from imagesearch.workspace import Workspace


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(data_dir: str, *args: str) -> dict:
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(RESULTS / "models"))
    out = subprocess.run([sys.executable, "-m", "imagesearch.cli", "--data-dir", data_dir, *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}


def request_params(app: dict, image: bytes) -> dict[str, str]:
    params = {
        "method": "aliexpress.ds.image.searchV2", "app_key": app["app_key"], "sign_method": "md5", "format": "json", "v": "2.0",
        "timestamp": str(int(time.time() * 1000)),
        "param0": json.dumps({"image_base64": base64.b64encode(image).decode(), "currency": "EUR", "sort_type": "best"}),
    }
    params["sign"] = signature(params, app["secret"], "md5")
    return params


async def level(base: str, app: dict, images: list[bytes], concurrency: int, total: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    shed = 0
    dropped = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, errors, shed, dropped
        while sent < total and time.perf_counter() < deadline:
            params = request_params(app, images[sent % len(images)])
            sent += 1
            started = time.perf_counter()
            try:
                response = await client.post(f"{base}/sync", data=params)
            except httpx.TransportError:  # the connection dropped (counted, then a fresh one is used)
                dropped += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            body = response.json()
            if response.status_code == 200 and body.get("code") == "ApiCallLimit":
                shed += 1  # turned away at once by admission control: not a latency of an admitted search
                await asyncio.sleep(1.0)  # as an SDK client honouring "this ban will last 1 seconds"
                continue
            latencies.append(elapsed)
            if response.status_code != 200 or "error_response" in body:
                errors += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency, "requests": len(latencies), "errors": errors, "shed": shed, "connections_dropped": dropped,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1), "p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }


def hey_level(base: str, image: bytes, concurrency: int, total: int) -> dict:
    """One level sent by ``hey`` (a load generator in Go: far lighter than this process's asyncio clients)
    to ``/v1/search`` (multipart, one photo): shed requests are 503s there, visible in hey's per-request CSV."""
    boundary = "loadbench7f3a"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    body_file = RESULTS / "load-body.bin"
    body_file.write_bytes(body)
    started = time.perf_counter()
    out = subprocess.run(
        ["hey", "-n", str(total), "-c", str(concurrency), "-m", "POST", "-T", f"multipart/form-data; boundary={boundary}",
         "-D", str(body_file), "-o", "csv", f"{base}/v1/search"],
        check=True, capture_output=True, text=True,
    ).stdout
    elapsed = time.perf_counter() - started
    rows = [line.split(",") for line in out.splitlines()[1:] if line.strip()]
    admitted = [float(row[0]) * 1000 for row in rows if row[6] == "200"]
    shed = sum(1 for row in rows if row[6] == "503")
    errors = len(rows) - len(admitted) - shed
    return {
        "generator": "hey", "concurrency": concurrency, "requests": len(admitted), "errors": errors, "shed": shed,
        # hey splits -n evenly between its workers (31 each for 2000 at 64): what it sent is that many, not -n
        "connections_dropped": (total // concurrency) * concurrency - len(rows), "requests_per_s": round(len(admitted) / elapsed, 1),
        "p50_ms": round(float(np.percentile(admitted, 50)), 1), "p99_ms": round(float(np.percentile(admitted, 99)), 1),
    }


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (the server and its workers)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += status_bytes("VmRSS", current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return total


async def soak(base: str, app: dict, images: list[bytes], total: int, server_pid: int) -> dict:
    """``total`` requests at concurrency 64, the server's memory sampled every second."""
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            samples.append((time.perf_counter() - started, tree_rss(server_pid)))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    result = await level(base, app, images, 64, total, 24 * 3600)
    sampler.cancel()
    values = [rss for _, rss in samples]
    tenth = max(1, len(values) // 10)
    settled, last = values[tenth:], values[-tenth:]
    middle = float(np.median(settled))
    mb = 1024 * 1024
    return {
        **result, "seconds": round(time.perf_counter() - started, 1),
        "rss_mb_first": round(values[0] / mb), "rss_mb_median_after_warmup": round(middle / mb), "rss_mb_max": round(max(values) / mb),
        "rss_mb_last_tenth_median": round(float(np.median(last)) / mb),
        "last_tenth_vs_median": round(float(np.median(last)) / middle - 1, 4),
    }


def http_overhead(base: str, app: dict, data_dir: str, workers: int, images: list[bytes], repeats: int) -> dict:
    """/sync round trips and ``SearchEngine.search`` in this process, interleaved query by query, at concurrency 1.

    The round trip uses a plain keep-alive ``http.client`` connection (the
    lightest client, so its own cost is not counted as the server's); the
    in-process engine gets the threads ``serve`` gives a worker.  Interleaving
    puts both under the same machine noise.
    """
    # The environment the server was started with (it inherits this process's): both must embed alike.
    settings = load_settings(Path(data_dir), environ=os.environ).with_overrides(
        model_cache_dir=str(RESULTS / "models"), threads=max(1, (os.cpu_count() or 1) // workers), index_threads=1
    )
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    params = [engine.parse({"currency": "EUR", "sort_type": "best"}, image=image, image_param="image") for image in images]
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    sync_ms: list[float] = []
    engine_ms: list[float] = []
    for round_no in range(repeats + 1):
        for image, item in zip(images, params, strict=True):
            body = urllib.parse.urlencode(request_params(app, image)).encode()
            started = time.perf_counter()
            connection.request("POST", "/sync", body, {"Content-Type": "application/x-www-form-urlencoded"})
            reply = connection.getresponse().read()
            elapsed = (time.perf_counter() - started) * 1000
            assert b"error_response" not in reply
            started = time.perf_counter()
            engine.search(item)
            if round_no:  # the first round warms both up
                sync_ms.append(elapsed)
                engine_ms.append((time.perf_counter() - started) * 1000)
    connection.close()
    engine.close()
    workspace.close()
    sync_p50, engine_p50 = float(np.percentile(sync_ms, 50)), float(np.percentile(engine_ms, 50))
    return {"requests": len(sync_ms), "sync_p50_ms": round(sync_p50, 1), "engine_search_p50_ms": round(engine_p50, 1),
            "http_adds_ms": round(sync_p50 - engine_p50, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--designs", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--soak", type=int, default=0, help="then N requests at concurrency 64, memory sampled")
    parser.add_argument("--levels", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--generator", choices=["python", "hey"], default="python",
                        help="hey: send the levels with `hey` (apt install hey) to /v1/search instead of this process to /sync")
    args = parser.parse_args()
    data_dir = str(RESULTS / "load-data")
    subprocess.run(["rm", "-rf", data_dir], check=True)
    catalog = json.loads(subprocess.run(
        [sys.executable, "-m", "imagesearch.cli", "demo-catalog", os.path.join(data_dir, "demo-catalog"), "--count", str(args.designs)],
        check=True, capture_output=True, text=True,
    ).stdout)["catalog"]
    imported = cli(data_dir, "import", catalog, "--no-progress")
    app = cli(data_dir, "apps", "create", "load", "--rate-limit", "100000")
    images = [open(os.path.join(data_dir, "demo-catalog", "images", f"{i}.jpg"), "rb").read() for i in range(20)]
    port = free_port()
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(RESULTS / "models"))
    server_log = open(RESULTS / "load-server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "imagesearch.cli", "--data-dir", data_dir, "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env, stdout=server_log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(level(base, app, images, 2, 20, 10))  # warm-up: every worker loads its model and index
        if args.generator == "hey":
            results = [hey_level(base, images[0], c, args.requests) for c in args.levels]
        else:
            results = [asyncio.run(level(base, app, images, c, args.requests, args.seconds)) for c in args.levels]
        soaked = asyncio.run(soak(base, app, images, args.soak, server.pid)) if args.soak else None
        overhead = http_overhead(base, app, data_dir, args.workers, images, max(1, args.requests // len(images)))
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = {
        "date": today(), "machine": machine(), "server_workers": args.workers,
        "catalog_products": imported["products_written"], "levels": results, "soak": soaked, "http_overhead_at_concurrency_1": overhead,
    }
    print(json.dumps(report, indent=2))
    (RESULTS / f"load-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
