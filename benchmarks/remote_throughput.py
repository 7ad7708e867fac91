"""Throughput of RemoteModel against the local server under a rate limit and injected faults,
and the client's per-query overhead beside the bare model's time.

    python benchmarks/remote_throughput.py --rate 20 --seconds 30 --fault-429 0.1 --fault-500 0.02

Writes benchmarks/results/remote_throughput.json and .md. The server runs in this
process (a uvicorn thread on 127.0.0.1) and limits the key to R requests/s; the
client is told the same limit. Throughput counts answered requests only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize  # noqa: E402
from bar_sdk.adapters.remote.cache import image_key  # noqa: E402
from bar_sdk.adapters.remote.encoding import encode_image  # noqa: E402
from bar_sdk.adapters.remote.http import HttpResponse  # noqa: E402
from bar_sdk.adapters.remote.presets.open_inference import HEADER_LENGTH, encode_tensors  # noqa: E402
from bar_sdk.adapters.server import DemoModel, Faults, serve  # noqa: E402
from bar_sdk.adapters.server.clarifai import ClarifaiShape  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="server limit R, requests/s per key")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each throughput run")
    p.add_argument("--fault-429", type=float, default=0.10)
    p.add_argument("--fault-500", type=float, default=0.02)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--images-per-request", type=int, default=1)
    p.add_argument("--shape", default="1,28,28", help="C,H,W of the served demo model")
    p.add_argument("--modes", default="async,threads", help="comma list of async, threads ('' to skip)")
    p.add_argument("--server-burst", type=int, default=4)
    p.add_argument("--overhead-shapes", default="1,28,28;3,224,224")
    p.add_argument("--overhead-reps", type=int, default=200)
    p.add_argument(
        "--stage-shapes",
        default="1,28,28;3,224,224;3,512,512",
        help="shapes of the per-stage client timing ('' to skip)",
    )
    p.add_argument("--stage-reps", type=int, default=60)
    p.add_argument("--batch", type=int, default=32, help="images per request in the batched client-path timing")
    p.add_argument("--markdown-from", default=None, help="rewrite the markdown of this results JSON, run nothing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--server",
        choices=("thread", "process"),
        default="thread",
        help="the server as a thread of this process, or `bar serve` in a child process (off the client's GIL)",
    )
    p.add_argument("--server-cpu", default=None, help="with --server process: pin the server to these CPUs (taskset)")
    p.add_argument(
        "--chunk-requests",
        type=int,
        default=0,
        help="send the run in calls of this many requests, --calls-in-flight overlapping (0: one call; large "
        "images need it)",
    )
    p.add_argument(
        "--calls-in-flight",
        type=int,
        default=2,
        help="with --chunk-requests: calls overlapping. A call ends by waiting out its last throttled request "
        "(Retry-After) while the others keep sending (on 2 cores, 4 instead of 2 did not raise the throughput)",
    )
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "remote_throughput"))
    return p.parse_args(argv)


def shape_of(text):
    return tuple(int(v) for v in text.split(","))


class DistinctImages:
    """Images distinct after 8-bit quantisation, made on demand from a pool of random ones.

    Image i is pool image i % pool with its first three pixels set to i's base-256 digits, so no two
    share a cache key, and the whole run never sits in memory. ``images(start, stop, out=buffer)`` fills
    a buffer the caller reuses (a fresh array per chunk costs a page fault per 4 KB, which at 3x224x224
    was more CPU than the client's own work); ``seconds`` is the CPU time spent making them, which is the
    benchmark's, not the client's, and is taken out of the client's figure.
    """

    def __init__(self, shape, seed, pool=64):
        self.base = np.random.default_rng(seed).random((pool, *shape), dtype=np.float32)
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, start, stop, out=None):
        started = time.thread_time()
        idx = np.arange(start, stop)
        out = np.empty((len(idx), *self.base.shape[1:]), np.float32) if out is None else out[: len(idx)]
        np.take(self.base, idx % len(self.base), axis=0, out=out, mode="clip")  # "raise" would buffer out
        flat = out.reshape(len(out), -1)
        for d in range(3):
            flat[:, d] = ((idx // 256**d) % 256) / 255.0
        with self._lock:
            self.seconds += time.thread_time() - started
        return out


class _ServerProcess:
    """``bar serve`` in a child process: the server's work off this process's GIL, as a vendor's is.

    ``extra``: more ``bar serve`` options (``--preset open_inference``, ...)."""

    def __init__(self, args, shape, extra=()):
        import secrets
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.api_key, self.admin_key = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        self.base_url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "bar_sdk.cli", "serve", "--input-shape", ",".join(map(str, shape))]
        cmd += ["--port", str(port), "--api-key", self.api_key, "--admin-key", self.admin_key]
        cmd += ["--rate", str(args.rate), "--burst", str(args.server_burst), "--seed", str(args.seed)]
        cmd += ["--fault-429", str(args.fault_429), "--fault-500", str(args.fault_500), *extra]
        if args.server_cpu is not None:
            cmd = ["taskset", "-c", args.server_cpu, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(self.base_url + "/_health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            self.proc.kill()
            raise RuntimeError("bar serve did not come up")

    def cpu_seconds(self):
        """The server process's CPU time so far (Linux: /proc), or None elsewhere."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stats(self):
        from types import SimpleNamespace

        d = httpx.get(self.base_url + "/_stats", headers={"x-admin-key": self.admin_key}, timeout=10).json()
        return SimpleNamespace(answered=d["answered"], billed=d["billed"], as_dict=lambda: d)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _predict_stream(remote, images, n, chunk, mode, calls=2):
    """Answer images 0..n-1, ``chunk`` at a time with ``calls`` calls overlapping (so the pipeline never drains
    between chunks); returns, per chunk, (start, probabilities). One call for everything when chunk >= n.
    One buffer per call in flight, filled again for each chunk."""
    starts = list(range(0, n, chunk))
    free = queue.SimpleQueue()
    for _ in range(calls):
        free.put(np.empty((min(chunk, n), *images.base.shape[1:]), np.float32))
    if mode == "async":

        async def run():
            gate = asyncio.Semaphore(calls)

            async def one(start):
                async with gate:
                    buffer = free.get()
                    try:  # the images are made on a thread, as in threads mode: the loop is the client's alone
                        x = await asyncio.to_thread(images, start, min(start + chunk, n), buffer)
                        return start, await remote.apredict_proba(x)
                    finally:
                        free.put(buffer)

            return await asyncio.gather(*(one(s) for s in starts))

        return asyncio.run(run())
    from concurrent.futures import ThreadPoolExecutor

    def one(start):
        buffer = free.get()
        try:
            return start, remote.predict_proba(images(start, min(start + chunk, n), buffer))
        finally:
            free.put(buffer)

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(one, starts))


def throughput_run(args, mode):
    shape = shape_of(args.shape)
    model = DemoModel(shape, n_classes=10, random_state=args.seed)
    n_requests = int(round(args.rate * args.seconds))
    n = n_requests * args.images_per_request
    images = DistinctImages(shape, args.seed + 1)
    chunk = args.chunk_requests * args.images_per_request if args.chunk_requests else n
    stack = contextlib.ExitStack()
    if args.server == "process":
        server = _ServerProcess(args, shape)
        stack.callback(server.close)
        model = DemoModel(shape, n_classes=10)  # the one `bar serve` builds
    else:
        faults = Faults(rate_429=args.fault_429, rate_500=args.fault_500, retry_after=1, random_state=args.seed)
        server = stack.enter_context(serve(model, rate_limit=args.rate, burst=args.server_burst, faults=faults))
    with stack:
        remote = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="demo",
            labels=list(model.labels),
            input_shape=shape,
            batch_size=args.images_per_request,
            rate_limit=args.rate,
            burst=1,
            max_concurrency=args.concurrency,
            retry=RetryPolicy(max_attempts=10, random_state=args.seed),
        )
        error, answers = None, None
        server_cpu0 = server.cpu_seconds() if args.server == "process" else None
        cpu0, start = time.process_time(), time.perf_counter()
        try:
            answers = _predict_stream(remote, images, n, chunk, mode, args.calls_in_flight)
        except Exception as exc:  # a lost query: reported, not hidden
            error = f"{type(exc).__name__}: {exc}"
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0 - images.seconds
        making = images.seconds
        server_cpu = None if server_cpu0 is None else server.cpu_seconds() - server_cpu0
        stats = server.stats()
        remote.close()
    # An image is lost when no answer came back or the answer is not its own (float32 batch-order noise
    # is ~1e-7; another image's scores differ by far more than the tolerance).
    lost = n
    if answers is not None:
        lost = 0
        for s, p in answers:
            want = model.predict_proba(quantize(images(s, s + len(p))))
            lost += int(np.sum(~np.all(np.isclose(p, want, rtol=1e-4, atol=1e-7), axis=1)))
        lost += n - sum(len(p) for _, p in answers)
    led = remote.ledger
    answered_requests = stats.answered
    return {
        "mode": mode,
        "server": args.server,
        "rate_limit_rps": args.rate,
        "requests": n_requests,
        "images": n,
        "chunk_images": chunk,
        "elapsed_s": round(elapsed, 3),
        "client_cpu_s": round(cpu, 3),
        "image_making_cpu_s": round(making, 3),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
        "throughput_rps": round(answered_requests / elapsed, 3),
        "fraction_of_rate": round(answered_requests / elapsed / args.rate, 4),
        "lost_queries": lost,
        "error": error,
        "billed_client": led.billed,
        "billed_server": stats.billed,
        "billed_match": led.billed == stats.billed,
        "client": {
            "attempts": led.attempts,
            "requests": led.requests,
            "retries": led.retries,
            "throttled": led.throttled,
            "failures": led.failures,
        },
        "server_stats": stats.as_dict(),
    }


def median_us(fn, reps):
    return median_each(lambda _: fn(), range(reps))


def median_each(fn, items, clock=time.perf_counter):
    """Median microseconds of ``fn(item)`` over ``items`` (a fresh input each time: no cache helps)."""
    times = []
    for item in items:
        t0 = clock()
        fn(item)
        times.append(clock() - t0)
    return float(np.median(times) * 1e6)


def cpu_each(fn, items):
    """Median CPU microseconds of this process (all its threads) per ``fn(item)``: other jobs on a shared
    core stretch wall time, not this."""
    return median_each(fn, items, clock=time.process_time)


def overhead_run(args, shape):
    rng = np.random.default_rng(args.seed)
    model = DemoModel(shape, n_classes=10, random_state=args.seed)
    labels = list(model.labels)
    reps = args.overhead_reps
    one = rng.random((1, *shape)).astype(np.float32)
    bare = median_us(lambda: model.predict_proba(one), reps)
    encode = median_us(lambda: encode_image(quantize(one)[0]), reps)
    # The whole client path without network or server: a MockTransport answering a canned body.
    canned = json.dumps(ClarifaiShape().ok([[(name, 0.1) for name in labels]], {"model_id": "demo"})).encode()
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=canned)))
    remote = RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key="k",
        model_id="demo",
        labels=labels,
        input_shape=shape,
        client=client,
    )
    fresh = rng.random((reps, 1, *shape)).astype(np.float32)  # a new image each time: cache misses
    it = iter(fresh)
    client_path = median_us(lambda: remote.predict_proba(next(it)), reps)
    with serve(model) as server:
        live = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="demo",
            labels=labels,
            input_shape=shape,
        )
        fresh2 = iter(rng.random((reps + 5, 1, *shape)).astype(np.float32))
        for _ in range(5):
            live.predict_proba(next(fresh2))
        roundtrip = median_us(lambda: live.predict_proba(next(fresh2)), reps)
        live.close()
    return {
        "shape": list(shape),
        "bare_model_us": round(bare, 1),
        "encode_png_us": round(encode, 1),
        "client_path_us": round(client_path, 1),
        "loopback_roundtrip_us": round(roundtrip, 1),
    }


def _canned_clarifai(labels, n):
    return json.dumps(ClarifaiShape().ok([[(name, 0.1) for name in labels]] * n, {"model_id": "demo"})).encode()


def _canned_open_inference(labels, n):
    scores = np.full((n, len(labels)), 1.0 / len(labels), np.float32)
    body, n_header = encode_tensors(
        {"model_name": "demo"},
        "outputs",
        [({"name": "probabilities", "datatype": "FP32", "shape": [n, len(labels)]}, scores)],
        binary=True,
    )
    return body, {HEADER_LENGTH: str(n_header)}


def _stage_model(preset_name, labels, shape, canned, headers, max_batch):
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=canned, headers=headers)))
    if preset_name == "clarifai":
        options = dict(model_id="demo", batch_size=max_batch, api_key="k")
    else:
        options = dict(
            model_name="demo",
            input_name="input",
            datatype="FP32",
            layout="NCHW",
            output_name="probabilities",
            binary=True,
            wait_ready=False,
            max_batch=max_batch,
        )
    return RemoteModel.from_preset(
        preset_name,
        base_url="https://api.example.com",
        labels=labels,
        input_shape=shape,
        client=client,
        max_concurrency=4,
        **options,
    )


def stage_run(args, shape, preset_name):
    """Per-image client time by stage (medians over fresh images; microseconds), and the whole path."""
    rng = np.random.default_rng(args.seed)
    labels = [f"class_{i}" for i in range(10)]
    reps = args.stage_reps
    n = args.batch
    if preset_name == "clarifai":
        canned1, headers1 = _canned_clarifai(labels, 1), {}
        cannedn, headersn = _canned_clarifai(labels, n), {}
    else:
        canned1, headers1 = _canned_open_inference(labels, 1)
        cannedn, headersn = _canned_open_inference(labels, n)
    one = _stage_model(preset_name, labels, shape, canned1, headers1, 1)
    preset, identity = one.preset, one._identity
    xs = rng.random((reps, 1, *shape)).astype(np.float32)
    qs = [quantize(x) for x in xs]
    tensor = preset.tensor_input
    encoded = [q[0] if tensor else encode_image(q[0]) for q in qs]
    response = HttpResponse(200, headers1, canned1)
    stages = {
        "quantise": cpu_each(quantize, xs),
        "hash": cpu_each(lambda q: image_key(q[0], identity), qs),
        "encode": 0.0 if tensor else cpu_each(lambda q: encode_image(q[0]), qs),
        "request_build": cpu_each(lambda e: preset.build_request(one.base_url, [e], one.labels), encoded),
        "parse": cpu_each(lambda _: [one._mapper.to_vector(a) for a in preset.parse(response, 1)], range(reps)),
    }
    fresh = rng.random((reps + 3, 1, *shape)).astype(np.float32)
    for x in fresh[:3]:
        one.predict_proba(x)
    whole = cpu_each(one.predict_proba, fresh[3:])
    whole_wall = median_each(one.predict_proba, rng.random((reps, 1, *shape)).astype(np.float32))
    one.close()
    batch = _stage_model(preset_name, labels, shape, cannedn, headersn, n)
    batch_reps = max(3, reps // 6)
    fresh_n = rng.random((batch_reps + 1, n, *shape)).astype(np.float32)
    batch.predict_proba(fresh_n[0])
    whole_batch = cpu_each(batch.predict_proba, fresh_n[1:]) / n
    batch.close()
    return {
        "shape": list(shape),
        "preset": preset_name,
        "stages_us": {k: round(v, 1) for k, v in stages.items()},
        "stages_sum_us": round(sum(stages.values()), 1),
        "whole_path_us": round(whole, 1),
        "whole_path_wall_us": round(whole_wall, 1),
        "fixed_overhead_us": round(whole - sum(stages.values()), 1),
        "quantise_plus_hash_us": round(stages["quantise"] + stages["hash"], 1),
        "ratio_to_quantise_plus_hash": round(whole / (stages["quantise"] + stages["hash"]), 2),
        f"whole_path_batch{n}_per_image_us": round(whole_batch, 1),
    }


def write_markdown(result, path):
    lines = [
        "# RemoteModel throughput against the local server" if result["throughput"] else "# RemoteModel client time",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"load average at start {result['machine']['loadavg']}.",
        "",
    ]
    lines += throughput_markdown(result) + overhead_markdown(result) + stage_markdown(result)
    path.write_text("\n".join(lines))


def throughput_markdown(result):
    cfg, rows = result["config"], result["throughput"]
    if not rows:
        return []
    lines = [
        f"Server limit R = {cfg['rate']:g} requests/s per key (burst {cfg['server_burst']}), injected faults "
        f"{cfg['fault_429']:.0%} 429 (Retry-After 1 s) and {cfg['fault_500']:.0%} 500; client told the same "
        f"limit (token bucket, burst 1), {cfg['concurrency']} requests in flight per call, "
        f"{cfg['images_per_request']} image(s) of shape {cfg['shape']} per request"
        + (
            f", calls of {cfg['chunk_requests']} requests, {cfg['calls_in_flight']} overlapping"
            if cfg.get("chunk_requests")
            else ""
        )
        + ". Throughput counts answered "
        "requests over the whole run; target: at least 90% of R, zero lost queries, billed == server count.",
        "",
        "| mode | server | run (s) | answered req/s | fraction of R | lost | billed client | billed server | "
        "retries | 429 seen | 500 seen | client CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stats = r.get("server_stats") or r["server"]  # older results kept the server's counts under "server"
        where = r["server"] if isinstance(r["server"], str) else "thread"
        lines.append(
            f"| {r['mode']} | {where} | {r['elapsed_s']:.1f} | {r['throughput_rps']:.2f} | "
            f"{r['fraction_of_rate']:.1%} | {r['lost_queries']} | {r['billed_client']} | {r['billed_server']} | "
            f"{r['client']['retries']} | {r['client']['throttled']} | {stats['injected']['500']} | "
            f"{r.get('client_cpu_s', '')} |"
        )
    lines += [
        "",
        f"At exactly R the {rows[0]['requests']} requests would take {rows[0]['requests'] / cfg['rate']:.1f} s; "
        "at the end of a run the last throttled requests wait out their Retry-After after everything else "
        "has been answered.",
    ]
    offered = cfg["rate"] * cfg["images_per_request"]
    for r in rows:
        if r.get("client_cpu_s"):
            per = r["client_cpu_s"] / r["images"]
            lines.append(
                f"- {r['mode']}: the client process spent {per * 1e3:.2f} ms of CPU per image"
                + (" (the in-process server's included)" if r.get("server") == "thread" else "")
                + (
                    f", the benchmark's own making of the images ({r['image_making_cpu_s'] / r['images'] * 1e3:.2f} ms)"
                    " taken out"
                    if "image_making_cpu_s" in r
                    else ""
                )
                + f"; the {offered:g} images/s offered need {per * offered:.2f} cores of client CPU"
                + (
                    f", and {r['server_cpu_s'] / r['images'] * offered:.2f} of the server's "
                    f"({r['server_cpu_s'] / r['images'] * 1e3:.2f} ms per image)."
                    if r.get("server_cpu_s")
                    else "."
                )
            )
    return lines + [""]


def overhead_markdown(result):
    if not result["overhead"]:
        return []
    lines = [
        "Per-query overhead, one image per request (medians; microseconds):",
        "",
        "| image shape | bare model | quantise + PNG | whole client path (no network) | loopback round trip "
        "(client + HTTP + server + model) |",
        "|---|---|---|---|---|",
    ]
    for o in result["overhead"]:
        lines.append(
            f"| {'x'.join(map(str, o['shape']))} | {o['bare_model_us']:.0f} | {o['encode_png_us']:.0f} | "
            f"{o['client_path_us']:.0f} | {o['loopback_roundtrip_us']:.0f} |"
        )
    return lines + [
        "",
        "The whole client path is quantise, hash, cache lookup, PNG + base64, request, parse, label "
        "mapping and ledger, with an httpx MockTransport in place of the network.",
        "",
    ]


def stage_markdown(result):
    """The per-stage table (CPU microseconds per image, medians)."""
    rows = result.get("stages") or []
    if not rows:
        return []
    n = result["config"].get("batch", 32)
    lines = [
        "Client time per image by stage (medians of the process's CPU time, microseconds; one image per "
        "request unless said). "
        + (
            f"Ran on CPU(s) {', '.join(map(str, result['machine']['affinity']))} of the machine; "
            if result["machine"].get("affinity")
            else ""
        )
        + "CPU time rather than wall time, so waiting for a shared core is not counted.",
        "",
        f"| shape | preset | quantise | hash | encode | request build | parse | sum | whole path (CPU) | "
        f"whole path (wall) | fixed overhead | whole / (quantise + hash) | whole, {n} per request |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        st = r["stages_us"]
        lines.append(
            f"| {'x'.join(map(str, r['shape']))} | {r['preset']} | {st['quantise']:.0f} | {st['hash']:.0f} | "
            f"{st['encode']:.0f} | {st['request_build']:.0f} | {st['parse']:.0f} | {r['stages_sum_us']:.0f} | "
            f"{r['whole_path_us']:.0f} | {r.get('whole_path_wall_us', float('nan')):.0f} | "
            f"{r['fixed_overhead_us']:.0f} | {r['ratio_to_quantise_plus_hash']:.1f}x | "
            f"{r[f'whole_path_batch{n}_per_image_us']:.0f} |"
        )
    lines += [
        "",
        "Stages: quantise to 8 bits; sha256 cache key; PNG (clarifai; none for the tensor protocol); the "
        "preset's request (base64 + JSON, or the binary tensor body); the preset's parse and the label "
        "mapping. Fixed overhead = whole path minus the stages: httpx, the cache lookup and write, the "
        "ledger, retries' bookkeeping, single flight.",
        "",
    ]
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.markdown_from:
        source = Path(args.markdown_from)
        write_markdown(json.loads(source.read_text()), source.with_suffix(".md"))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = {
        "command": "python benchmarks/remote_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": {
            "rate": args.rate,
            "seconds": args.seconds,
            "fault_429": args.fault_429,
            "fault_500": args.fault_500,
            "concurrency": args.concurrency,
            "images_per_request": args.images_per_request,
            "shape": args.shape,
            "server_burst": args.server_burst,
            "seed": args.seed,
            "batch": args.batch,
            "chunk_requests": args.chunk_requests,
            "calls_in_flight": args.calls_in_flight if args.chunk_requests else 1,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg": [round(v, 2) for v in os.getloadavg()],
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "throughput": [],
        "overhead": [],
        "stages": [],
    }
    for text in filter(None, args.stage_shapes.split(";")):
        for preset_name in ("clarifai", "open_inference"):
            row = stage_run(args, shape_of(text), preset_name)
            print(f"stages {row}", flush=True)
            result["stages"].append(row)
    for mode in filter(None, args.modes.split(",")):
        row = throughput_run(args, mode)
        print(
            f"{mode}: {row['throughput_rps']:.2f} req/s = {row['fraction_of_rate']:.1%} of R, lost "
            f"{row['lost_queries']}, billed {row['billed_client']} (server {row['billed_server']})",
            flush=True,
        )
        result["throughput"].append(row)
    for text in filter(None, args.overhead_shapes.split(";")):
        row = overhead_run(args, shape_of(text))
        print(f"overhead {row}", flush=True)
        result["overhead"].append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, out.with_suffix(".md"))
    ok = all(
        r["fraction_of_rate"] >= 0.9 and r["lost_queries"] == 0 and r["billed_match"] for r in result["throughput"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
