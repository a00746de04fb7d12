"""Gateway overhead: the same requests sent straight to a fast stub endpoint and through the gateway, in one run.

Why this shape: the gateway's added latency is the product's latency, and the only fair baseline is the same
load against the same upstream, measured by the same client in the same run. The stub endpoint answers in
microseconds, so what remains is the gateway (and the host it runs in). Targets (issue 6): added p50 <= 2 ms,
added p99 <= 10 ms, throughput through the gateway >= 50% of direct.

    .venv/bin/python bench/gateway.py [--requests 3000] [--concurrency 32]

Needs Azurite (``scripts/azurite.sh start``) for the model's ledger record. Starts the stub endpoint
(``python -m tests.fakes.scoring_stub``) and a devhost running the app with its targets pointed at the stub
(``tests.integration.gateway_devhost_app``) as subprocesses, and stops them at the end. Also prints the
gateway's own ``x-autotune-overhead-ms`` and a "host floor" (the devhost answering a request the gateway refuses at
once: no upstream, no storage), so the host's share (HTTP server, request objects) can be told apart, and the same
load through the gateway's code in-process (no HTTP host in front, the stub still upstream): what the gateway adds
whatever host runs it. On a small shared machine the client, the stub and the host compete for the same cores; the
load average is printed so that numbers from a busy machine are read as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.azurite import azurite_running  # noqa: E402
from devhost.testing import DevHostProcess  # noqa: E402
from shared.backends.base import ScoringTarget  # noqa: E402
from shared.gateway import targets, upstream  # noqa: E402
from shared.gateway.service import OVERHEAD_HEADER, Gateway  # noqa: E402
from shared.ledger import Ledger, ModelRecord  # noqa: E402
from shared.settings import load_settings  # noqa: E402

ENDPOINT_KEY = "bench-endpoint-key"
GATEWAY_KEY = "bench-gateway-key"
MODEL = "bench-bot"
MESSAGES = [{"role": "user", "content": "I am going to Paris, what should I see?"}]


@dataclass
class Result:
    latencies: list[float]  # seconds
    wall: float
    errors: int
    overheads: list[float]  # the gateway's x-autotune-overhead-ms, when present

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


async def load(
    url: str, body: bytes, headers: dict[str, str], requests: int, concurrency: int, expect: int = 200
) -> Result:
    """``requests`` POSTs, ``concurrency`` in flight at any time, over one pooled client.

    The load generator is aiohttp, not httpx: httpx's async pool collapses under concurrency (encode/httpx#3215;
    here about 260 req/s at 32 in flight against 9,000 with aiohttp), which would measure the client instead.
    """
    import aiohttp

    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    queue = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {**headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    if response.status != expect:
                        errors += 1
                    if "x-autotune-overhead-ms" in response.headers:
                        overheads.append(float(response.headers["x-autotune-overhead-ms"]))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return Result(latencies, wall, errors, overheads)


async def load_in_process(gateway: Gateway, body: bytes, requests: int, concurrency: int) -> Result:
    """The gateway's code alone, no HTTP host in front: ``Gateway.chat_completions`` called directly, the upstream
    call real (its pooled client to the stub). What the gateway itself adds, whatever host runs it."""
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    queue = iter(range(requests))

    async def worker() -> None:
        nonlocal errors
        for _ in queue:
            started = time.perf_counter()
            reply = await gateway.chat_completions(headers, body, started)
            latencies.append(time.perf_counter() - started)
            errors += reply.status != 200
            overheads.append(float(reply.headers[OVERHEAD_HEADER]))

    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    finally:
        await upstream.aclose_client()
    return Result(latencies, wall, errors, overheads)


def start_stub() -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "tests.fakes.scoring_stub",
        "--port",
        "0",
        "--key",
        ENDPOINT_KEY,
        "--answer",
        "Hi.",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    found = re.search(r"stub listening on (\S+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the stub endpoint did not start: {line!r}")
    return proc, found.group(1)


def bench_env(folder: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "LEDGER_TABLE_PREFIX": f"b{suffix}",
        "TRAINING_CONTAINER": f"training-{suffix}",
        "ML_BACKEND": "local",
        "LOCAL_STATE_DIR": str(folder / "state"),
        "GATEWAY_API_KEYS": GATEWAY_KEY,
        "IDLE_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "GATEWAY_STUB_TARGET_FILE": str(folder / "target.json"),
        "LOG_LEVEL": "WARNING",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    if not azurite_running():
        print("Azurite is not running: start it with scripts/azurite.sh start", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    env = bench_env(Path(tempfile.mkdtemp(prefix="bench-gateway-")))
    ledger = Ledger(load_settings(env))
    ledger.upsert(
        ModelRecord(model=MODEL, state="live", desired_version="1", live_version="1", endpoint_name=f"at-{MODEL}")
    )
    stub, stub_url = start_stub()
    results: dict[tuple[str, int], Result] = {}
    try:
        Path(env["GATEWAY_STUB_TARGET_FILE"]).write_text(json.dumps({"url": stub_url, "key": ENDPOINT_KEY}))
        with DevHostProcess(env={**os.environ, **env}, app="tests.integration.gateway_devhost_app") as host:
            chat_url = f"{host.url}/v1/chat/completions"
            direct_body = {"input_data": {"input_string": MESSAGES, "parameters": {"max_new_tokens": 16}}}
            chat_body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
            runs = {
                "direct": (stub_url, direct_body, ENDPOINT_KEY, 200),
                "gateway": (chat_url, chat_body, GATEWAY_KEY, 200),
                "host floor": (chat_url, chat_body, "not-a-key", 401),
            }
            for url, body, key, expect in runs.values():
                auth = {"Authorization": f"Bearer {key}"}
                asyncio.run(load(url, json.dumps(body).encode(), auth, args.warmup, args.concurrency, expect))
            # One request at a time too: the added latency without queueing, i.e. the per-request cost.
            for concurrency, count in ((args.concurrency, args.requests), (1, max(args.requests // 6, 100))):
                for name, (url, body, key, expect) in runs.items():
                    auth = {"Authorization": f"Bearer {key}"}
                    run = load(url, json.dumps(body).encode(), auth, count, concurrency, expect)
                    results[name, concurrency] = asyncio.run(run)
        # The same requests through the gateway's code in this process, the stub still upstream.
        target = ScoringTarget(uri=stub_url, headers={"Authorization": f"Bearer {ENDPOINT_KEY}"})
        targets.set_resolver(lambda record: target)
        gateway = Gateway(load_settings(env))
        body = json.dumps(chat_body).encode()
        asyncio.run(load_in_process(gateway, body, args.warmup, args.concurrency))
        for concurrency, count in ((args.concurrency, args.requests), (1, max(args.requests // 6, 100))):
            results["in-process", concurrency] = asyncio.run(load_in_process(gateway, body, count, concurrency))
    finally:
        stub.terminate()
        stub.wait(10)
    report(results, args, load_before)
    return 0 if all(r.errors == 0 for r in results.values()) else 1


def report(results: dict[tuple[str, int], Result], args: argparse.Namespace, load_before: float) -> None:
    print(f"cores: {os.cpu_count()}, load average before: {load_before:.2f} (stub, devhost and client share them)")
    print(f"{'':18}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'errors':>7}{'in-gateway p50/p99 ms':>23}")
    for (name, concurrency), r in results.items():
        inside = sorted(r.overheads)
        own = f"{inside[len(inside) // 2]:.2f} / {inside[int(0.99 * (len(inside) - 1))]:.2f}" if inside else "-"
        label = f"{name} c={concurrency}"
        print(f"{label:18}{len(r.latencies):9d}{r.pct(0.5):9.2f}{r.pct(0.99):9.2f}{r.rps:8.0f}{r.errors:7d}{own:>23}")
    c = args.concurrency
    direct, gateway = results["direct", c], results["gateway", c]
    added50, added99 = gateway.pct(0.5) - direct.pct(0.5), gateway.pct(0.99) - direct.pct(0.99)
    ratio = gateway.rps / direct.rps

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"through the devhost, at concurrency {c}:")
    print(f"  added latency p50: {added50:.2f} ms (target <= 2 ms: {verdict(added50 <= 2)})")
    print(f"  added latency p99: {added99:.2f} ms (target <= 10 ms: {verdict(added99 <= 10)})")
    print(f"  throughput ratio gateway/direct: {ratio:.2f} (target >= 0.50: {verdict(ratio >= 0.5)})")
    print(f"  host floor / direct throughput: {results['host floor', c].rps / direct.rps:.2f}")
    inproc = results["in-process", c]
    print(f"the gateway's code alone (in-process, no HTTP host), at concurrency {c}:")
    print(f"  added latency p50: {inproc.pct(0.5) - direct.pct(0.5):.2f} ms (target <= 2 ms)")
    print(f"  added latency p99: {inproc.pct(0.99) - direct.pct(0.99):.2f} ms (target <= 10 ms)")
    print(f"  throughput ratio in-process/direct: {inproc.rps / direct.rps:.2f} (target >= 0.50)")
    single = results["gateway", 1].pct(0.5) - results["direct", 1].pct(0.5)
    floor = results["host floor", 1].pct(0.5) - results["direct", 1].pct(0.5)
    print(
        f"one request at a time: added latency p50 {single:.2f} ms (host floor alone: {floor:.2f} ms more than direct)"
    )


if __name__ == "__main__":
    sys.exit(main())
