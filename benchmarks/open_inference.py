"""The Open Inference Protocol client: time per image by stage, throughput against the local server,
and the protocol's overhead against Seldon MLServer on loopback.

    python benchmarks/open_inference.py                      # all three parts
    python benchmarks/open_inference.py --parts stages       # one part

Writes benchmarks/results/open_inference.json and .md.

- stages: per-image client time (no network; an httpx MockTransport answers)
  for 1x28x28, 3x224x224 and 3x512x512: quantise, hash, encode, request build,
  parse, and the whole predict_proba path, for the open_inference preset (binary
  and JSON tensors) beside the PNG path of the clarifai preset.
- cache: the whole path with the answer cache on (the default, in memory) and
  on disk, every image new, beside the same client without it and the bare
  cost of quantising and hashing the batch (not part of the default run:
  `--parts cache`).
- throughput: open_inference (binary tensors) against `bar serve --preset
  open_inference`, in this process (`--server thread`) and in its own process
  (`--server process`), R requests/s with 10% injected 429s and 32 images of
  3x224x224 per request: answered requests/s over the whole call and in steady
  state (between 10% and 90% of the images billed), lost, billed == server.
- mlserver: BARClassifier queries/s through the protocol to MLServer (our
  digits model in a custom runtime) vs the same model in-process, one run each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "helpers")]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, quantize  # noqa: E402
from bar_sdk.adapters.remote.cache import image_keys  # noqa: E402
from bar_sdk.adapters.remote.encoding import encode_image  # noqa: E402
from bar_sdk.adapters.remote.http import HttpResponse  # noqa: E402
from bar_sdk.adapters.remote.presets.open_inference import HEADER_LENGTH, encode_tensors  # noqa: E402
from benchmarks.remote_throughput import cpu_each, median_us  # noqa: E402

SHAPES = {"1x28x28": (1, 28, 28), "3x224x224": (3, 224, 224), "3x512x512": (3, 512, 512)}
REPS = {"1x28x28": 300, "3x224x224": 40, "3x512x512": 10}
LABELS = [f"class_{i}" for i in range(10)]
IMAGENET = [f"imagenet_{i}" for i in range(1000)]


def oip_answer(n, binary, width=10):
    p = np.full((n, width), 1.0 / width, dtype=np.float32)
    body, n_header = encode_tensors(
        {"model_name": "m"},
        "outputs",
        [({"name": "probabilities", "datatype": "FP32", "shape": [n, width]}, p)],
        binary,
    )
    return body, ({HEADER_LENGTH: str(n_header)} if n_header is not None else {})


def clarifai_answer(n, labels=LABELS):
    concepts = [{"id": name, "name": name, "value": 1.0 / len(labels)} for name in labels]
    return json.dumps(
        {
            "status": {"code": 10000},
            "outputs": [{"status": {"code": 10000}, "data": {"concepts": concepts}} for _ in range(n)],
        }
    ).encode(), {}


def client(kind, shape, n, labels=LABELS, **model_options):
    """A RemoteModel whose transport answers at once, and the canned body (no answer cache unless asked)."""
    if kind == "clarifai_png":
        body, headers = clarifai_answer(n, labels)
        options = dict(model_id="m", batch_size=max(n, 1))
        preset = "clarifai"
    else:
        binary = kind != "oip_json"
        body, headers = oip_answer(n, binary, len(labels))
        options = dict(
            model_name="m",
            input_name="input",
            datatype="UINT8" if kind == "oip_binary_u8" else "FP32",
            layout="NCHW",
            output_name="probabilities",
            binary=binary,
            wait_ready=False,
            max_batch=max(n, 1),
        )
        preset = "open_inference"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body, headers=headers))
    model = RemoteModel.from_preset(
        preset,
        base_url="http://127.0.0.1:9",
        api_key="k",
        labels=labels,
        input_shape=shape,
        client=httpx.Client(transport=transport),
        **{"use_cache": False, **options, **model_options},
    )
    return model, HttpResponse(200, headers, body)


def stages(args):
    rows = []
    rng = np.random.default_rng(0)
    cases = [
        (name, n, LABELS) for name in SHAPES for n in {"1x28x28": (1, 32, 1024), "3x512x512": (1,)}.get(name, (1, 32))
    ]
    cases.append(("3x224x224", 32, IMAGENET))  # an ImageNet model's answer: 1,000 scores per image
    for name, n, labels in cases:
        shape = SHAPES[name]
        base_reps = max(3, int(REPS[name] * args.reps_scale))
        reps_n = max(3, base_reps // 10) if n > 32 else base_reps
        x = rng.random((n, *shape)).astype(np.float32)
        q = quantize(x)
        bare = median_us(lambda: image_keys(quantize(x), "id"), reps_n) / n
        if labels is IMAGENET:
            kinds = ("oip_binary", "oip_binary_u8")  # Clarifai answers at most 200 concepts per image
        elif n <= 128:
            kinds = ("oip_binary", "oip_binary_u8", "oip_json", "clarifai_png")
        else:  # Clarifai takes at most 128 images per request; the tensor protocol has no such limit
            kinds = ("oip_binary", "oip_binary_u8", "oip_json")
        for kind in kinds:
            model, response = client(kind, shape, n, labels)
            reps = reps_n if kind != "oip_json" or name == "1x28x28" else max(3, reps_n // 10)
            preset = model.preset
            row = {"shape": name, "images_per_request": n, "classes": len(labels), "client": kind}
            row["quantise_us"] = median_us(lambda: quantize(x), reps) / n
            row["hash_us"] = median_us(lambda: image_keys(q, "id"), reps) / n
            if kind == "clarifai_png":
                row["encode_us"] = median_us(lambda: [encode_image(img) for img in q], reps) / n
                encoded = [encode_image(img) for img in q]
            else:
                row["encode_us"] = 0.0  # tensors travel as they are: the batch itself, as the client passes it
                encoded = q
            row["request_build_us"] = median_us(lambda: preset.build_request(model.base_url, encoded, labels), reps) / n
            row["parse_us"] = median_us(lambda: preset.parse(response, n), reps) / n
            model.predict_proba(x)  # warm: connection pool, first-call costs
            row["whole_path_us"] = median_us(lambda: model.predict_proba(x), reps) / n
            row["bare_quantise_hash_us"] = bare
            row["whole_over_bare"] = row["whole_path_us"] / bare
            rows.append(row)
            model.close()
            print(json.dumps(row), flush=True)
    return rows


def cache_cases(args):
    """The whole path with the answer cache on (the default), every image new, in memory and on disk,
    beside the same client without the cache; and the bare cost of quantising and hashing the batch.
    Medians of this process's CPU time (all its threads), so a shared core's waits are not counted."""
    rows = []
    rng = np.random.default_rng(1)
    cases = [
        ("1x28x28", 32, LABELS, "oip_binary_u8"),
        ("1x28x28", 1024, LABELS, "oip_binary_u8"),
        ("1x28x28", 4096, LABELS, "oip_binary_u8"),
        ("1x28x28", 32, LABELS, "clarifai_png"),
        ("3x224x224", 32, LABELS, "oip_binary_u8"),
        ("3x224x224", 32, IMAGENET, "oip_binary_u8"),
    ]
    for name, n, labels, kind in cases:
        shape = SHAPES[name]
        fewer = 2 if n <= 32 else 10 if n <= 1024 else 30  # fewer repetitions of larger calls
        reps = max(3, int(REPS[name] // fewer * args.reps_scale))
        xs = [rng.random((n, *shape)).astype(np.float32) for _ in range(reps + 1)]
        row = {"shape": name, "images_per_request": n, "classes": len(labels), "client": kind}
        row["bare_quantise_hash_us"] = cpu_each(lambda x: image_keys(quantize(x), "id"), xs[1:]) / n
        for where in ("off", "memory", "disk"):
            with tempfile.TemporaryDirectory() as folder:
                model, _ = client(
                    kind,
                    shape,
                    n,
                    labels,
                    use_cache=where != "off",
                    cache_dir=folder if where == "disk" else None,
                    max_queries=n * (len(xs) + 1),
                )
                model.predict_proba(xs[0])  # warm: connection pool, first-call costs
                row[f"whole_cache_{where}_us"] = cpu_each(model.predict_proba, xs[1:]) / n
                model.close()
        row["memory_over_bare"] = row["whole_cache_memory_us"] / row["bare_quantise_hash_us"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def throughput(args):
    """One run per server mode in ``args.server``: ``thread`` (in this process) or ``process`` (``bar serve``)."""
    return [throughput_run(args, mode) for mode in args.server.split(",")]


@contextmanager
def server_process(rate, model_name, datatype):
    """``bar serve --preset open_inference`` in its own process on a free port: ``(base_url, api_key, stats)``."""
    from types import SimpleNamespace

    from benchmarks.remote_throughput import _ServerProcess

    options = SimpleNamespace(rate=rate, server_burst=4, seed=0, fault_429=0.1, fault_500=0.0, server_cpu=None)
    extra = ["--classes", "10", "--preset", "open_inference", "--model-name", model_name, "--input-datatype", datatype]
    server = _ServerProcess(options, (3, 224, 224), extra)
    try:
        yield server.base_url, server.api_key, lambda: server.stats().as_dict()
    finally:
        server.close()


@contextmanager
def server_thread(model, rate, model_name, datatype):
    from bar_sdk.adapters.server import Faults, serve

    faults = Faults(rate_429=0.10, retry_after=1, random_state=0)
    with serve(
        model,
        preset="open_inference",
        model_name=model_name,
        rate_limit=rate,
        burst=4,
        faults=faults,
        input_datatype=datatype,
    ) as server:
        yield server.base_url, server.api_key, lambda: server.stats().as_dict()


def throughput_run(args, mode):
    from bar_sdk.adapters.server import DemoModel

    shape = (3, 224, 224)
    model = DemoModel(shape, n_classes=10, random_state=0)
    per_request = 32
    n_requests = int(round(args.rate * args.seconds))
    x = np.random.default_rng(1).random((n_requests * per_request, *shape)).astype(np.float32)
    if mode == "process":
        server = server_process(args.rate, "m", args.datatype)
    else:
        server = server_thread(model, args.rate, "m", args.datatype)
    with server as (base_url, api_key, stats):
        remote = RemoteModel.from_preset(
            "open_inference",
            base_url=base_url,
            api_key=api_key,
            model_name="m",
            labels=list(model.labels),
            input_shape=shape,
            max_batch=per_request,
            rate_limit=args.rate,
            max_concurrency=args.concurrency,
            retry=RetryPolicy(max_attempts=12, random_state=0),
            use_cache=False,
        )
        remote.predict_proba(x[:1])  # readiness and metadata, outside the timed run
        trace, done = [], threading.Event()
        start, cpu_start = time.perf_counter(), time.process_time()

        def sample():  # (seconds since start, images billed): when the answers came, for the steady rate
            while not done.wait(0.02):
                trace.append((time.perf_counter() - start, remote.ledger.billed))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        p = remote.predict_proba(x[1:])
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        done.set()
        sampler.join()
        trace.append((wall, remote.ledger.billed))  # the end: every image billed
        served = stats()
        remote.close()
    lost = int(len(x) - 1 - np.isfinite(p).all(axis=1).sum())
    breakdown = request_breakdown(model, x[:per_request], args.datatype)
    row = {
        "server": mode,
        **steady(trace, remote.ledger.billed - 1, per_request, args.rate),
        "rate_limit": args.rate,
        "images_per_request": per_request,
        "datatype": args.datatype,
        "requests_planned": n_requests,
        "max_concurrency": args.concurrency,
        "seconds": wall,
        "client_cpu_seconds": cpu,
        "answered_requests_per_s": (served["answered"] - 1) / wall,
        "fraction_of_rate": (served["answered"] - 1) / wall / args.rate,
        "images_per_s": (len(x) - 1) / wall,
        "lost": lost,
        "billed_client": remote.ledger.billed,
        "billed_server": served["billed"],
        "throttled": remote.ledger.throttled,
        "injected_429": served["injected"]["429"],
        "breakdown_ms": breakdown,
    }
    print(json.dumps(row), flush=True)
    return row


def steady(trace, total, per_request, rate):
    """The answers' timing: the first one, the rate between 10% and 90% of the images billed, the last one.

    The steady rate leaves out the call's start (checking, quantising and hashing every image before the
    first request) and its end (the last throttled requests waiting out their Retry-After)."""
    t = np.array([s for s, _ in trace])
    billed = np.array([b for _, b in trace]) - 1  # the warm-up image was billed before the timed call
    t10, t90 = t[np.argmax(billed >= 0.1 * total)], t[np.argmax(billed >= 0.9 * total)]
    per_s = 0.8 * total / per_request / (t90 - t10)
    return {
        "first_answer_s": float(t[np.argmax(billed > 0)]),
        "steady_requests_per_s": float(per_s),
        "steady_fraction_of_rate": float(per_s / rate),
        "last_answer_s": float(t[np.argmax(billed >= total)]),
    }


def request_breakdown(model, x, datatype):
    """Milliseconds of CPU work for one request of ``x`` (medians of 5), both sides, without HTTP."""
    from bar_sdk.adapters.remote.presets.open_inference import OpenInferencePreset
    from bar_sdk.adapters.server.app import ServerState
    from bar_sdk.adapters.server.open_inference import OpenInferenceShape

    preset = OpenInferencePreset(
        "m", input_name="input", datatype=datatype, layout="NCHW", output_name="probabilities", binary=True
    )
    preset.check_labels(list(model.labels))
    shape = OpenInferenceShape()
    state = ServerState(model, shape, ["k"], "admin", None, None, None, False, None)
    shape.bind(state, "m", datatype)
    q = quantize(x)
    request = preset.build_request("http://127.0.0.1", list(q), list(model.labels))
    headers = {k.lower(): v for k, v in request.headers.items()}
    images, _ = shape.read(request.content, headers)
    out = {"body_mb": len(request.content) / 1e6}
    for name, fn in (
        ("client_quantise", lambda: quantize(x)),
        ("client_hash", lambda: image_keys(q, "id")),
        ("client_build", lambda: preset.build_request("http://127.0.0.1", list(q), list(model.labels))),
        ("server_read_validate", lambda: shape.read(request.content, headers)),
        ("server_predict", lambda: state.predict(images)),
        ("bare_model", lambda: model.predict_proba(x)),
    ):
        out[name] = median_us(fn, 5) / 1e3
    return out


def mlserver_overhead(args):
    from _mlserver import mlserver
    from _mlserver_runtime import LABELS as DIGITS, SHAPE, digits_model
    from sklearn.datasets import load_breast_cancer

    from bar_sdk import BARClassifier

    data = load_breast_cancer()
    X, y = data.data[:200], data.target[:200]
    options = dict(max_queries=args.bar_queries, batch_size=20, n_directions=4, random_state=0)
    local = digits_model()
    start = time.perf_counter()
    in_process = BARClassifier(local, **options).fit(X, y)
    t_local = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder, mlserver(Path(folder)) as server:
        remote = RemoteModel.from_preset(
            "open_inference",
            base_url=server.base_url,
            model_name="digits",
            labels=DIGITS,
            input_shape=SHAPE,
            max_batch=128,
            max_concurrency=4,
        )
        remote.predict_proba(np.zeros((1, *SHAPE), np.float32))  # readiness and metadata, outside the timing
        billed_before, count_before = remote.ledger.billed, server.count("digits")
        start = time.perf_counter()
        through = BARClassifier(remote, **options).fit(X, y)
        t_remote = time.perf_counter() - start
        served = server.count("digits") - count_before
        remote.close()
    row = {
        "bar_queries": through.queries_,
        "in_process_queries_per_s": in_process.queries_ / t_local,
        "protocol_queries_per_s": through.queries_ / t_remote,
        "overhead_ratio": (in_process.queries_ / t_local) / (through.queries_ / t_remote),
        "billed": remote.ledger.billed - billed_before,
        "server_count": served,
        "cache_hits": remote.ledger.cache_hits,
        "requests": remote.ledger.requests,
    }
    print(json.dumps(row), flush=True)
    return row


def us(v):
    """Microseconds as the tables print them: one decimal below 10, none above."""
    return f"{v:.1f}" if v < 10 else f"{v:.0f}"


def cache_markdown(rows):
    lines = [
        "## The whole path with the answer cache on (the default), every image new",
        "",
        "Medians of this process's CPU time per image, microseconds (all its threads; a shared core's waits "
        "are not counted). `off`: `use_cache=False`, as in the table above; `memory`: the default; `disk`: "
        "`cache_dir=` (SQLite, one transaction per request, with the ledger). Every call sends new images, "
        "so none is a cache hit: the cache's cost is its lookup and its write. Bare: `quantize`, then "
        "`image_keys`, on the same batch.",
        "",
        "| shape | images/request | classes | client | bare quantise + hash | cache off | memory | disk "
        "| memory / bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['images_per_request']} | {r['classes']} | {r['client']} | "
            f"{us(r['bare_quantise_hash_us'])} | {us(r['whole_cache_off_us'])} | "
            f"{us(r['whole_cache_memory_us'])} | {us(r['whole_cache_disk_us'])} | {r['memory_over_bare']:.1f}x |"
        )
    return [*lines, ""]


def markdown(result):
    commands = "; ".join(f"{part}: `{cmd}`" for part, cmd in result.get("commands", {}).items())
    lines = [
        "# Open Inference Protocol client",
        "",
        f"Commands: {commands}  ",
        f"Machine: {os.cpu_count()} CPUs (shared with other jobs), Python {platform.python_version()}; load "
        "average at the start of each part's run: "
        + ", ".join(f"{part} {load}" for part, load in result["load_by_part"].items())
        + ".",
        "",
    ]
    if "stages" in result:
        lines += [
            "## Client time per image by stage (medians, microseconds; no network)",
            "",
            "| shape | images/request | classes | client | quantise | hash | encode | request build | parse | "
            "whole path | whole / (quantise + hash) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["stages"]:
            lines.append(
                f"| {r['shape']} | {r['images_per_request']} | {r.get('classes', 10)} | {r['client']} | "
                f"{us(r['quantise_us'])} | "
                f"{us(r['hash_us'])} | {us(r['encode_us'])} | {us(r['request_build_us'])} | "
                f"{us(r['parse_us'])} | {us(r['whole_path_us'])} | {r['whole_over_bare']:.1f}x |"
            )
        lines += [
            "",
            "`oip_binary`: open_inference with the binary tensor extension, FP32 input; `oip_binary_u8`: the "
            "same for a model that declares UINT8 input (the 8-bit images travel as they are); `oip_json`: "
            "FP32 tensors as JSON lists; `clarifai_png`: the PNG + base64 path every image preset takes (its "
            "answers are one name-score dict per image; the tensor answers are one block). The whole path is "
            "RemoteModel.predict_proba (quantise, hash, cache plan, ledger, request, parse, label mapping) "
            "with an httpx MockTransport answering at once. The last column divides it by the bare cost of "
            "quantising and hashing the same batch, timed on its own (`quantize`, then `image_keys`: the "
            "identity and shape hashed once per batch, one copy of that hash state per image). Clarifai takes "
            "at most 128 images per request; the tensor protocol has no such limit, hence its 1,024 row. The "
            "1,000-class rows answer with an ImageNet model's 1,000 scores per image.",
            "",
        ]
    if "cache" in result:
        lines += cache_markdown(result["cache"])
    if "throughput" in result:
        runs = result["throughput"]
        t = runs[0]
        lines += [
            f"## Against the local server (open_inference, binary {t['datatype']} tensors)",
            "",
            f"R = {t['rate_limit']:g} requests/s, {t['images_per_request']} images of 3x224x224 per request "
            f"({t['rate_limit'] * t['images_per_request']:.0f} images/s offered), 10% injected 429s "
            "(Retry-After 1 s). `thread`: the server runs in the client's process (one GIL); `process`: "
            "`bar serve` in its own process, as a real API runs apart from its client.",
            "",
            "| server | run (s) | first answer (s) | answered req/s | fraction of R | steady req/s (10-90% billed) "
            "| steady fraction of R | images/s | lost | billed client | billed server | 429 seen | 429 injected "
            "| client CPU s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in runs:
            lines.append(
                f"| {t['server']} | {t['seconds']:.1f} | {t['first_answer_s']:.1f} | "
                f"{t['answered_requests_per_s']:.2f} | {100 * t['fraction_of_rate']:.1f}% | "
                f"{t['steady_requests_per_s']:.2f} | {100 * t['steady_fraction_of_rate']:.1f}% | "
                f"{t['images_per_s']:.0f} | {t['lost']} | {t['billed_client']} | {t['billed_server']} | "
                f"{t['throttled']} | {t['injected_429']} | {t['client_cpu_seconds']:.1f} |"
            )
        b = runs[0]["breakdown_ms"]
        lines += [
            "",
            f"Where the time goes, per request ({b['body_mb']:.1f} MB body; ms of CPU, medians, no HTTP): "
            + ", ".join(f"{k} {v:.0f}" for k, v in b.items() if k != "body_mb")
            + ". The timed call is one `predict_proba` of "
            f"{t['requests_planned'] * t['images_per_request'] - 1} float images "
            f"({(t['requests_planned'] * t['images_per_request'] - 1) * 3 * 224 * 224 * 4 / 1e9:.1f} GB of "
            "float32): it checks all of them (no request leaves for a batch with a bad value), holds room for "
            "every row in the budget, then quantises and hashes them a part at a time, each part's requests "
            "leaving while the next is prepared; the wait before the first answer is the check and one part. "
            f"At R the {t['requests_planned']} requests alone take about {t['requests_planned'] / t['rate_limit']:.0f}"
            " s; the whole-call fraction also counts that start and the tail, the last throttled requests "
            "waiting out their Retry-After (a request throttled twice waits its backoff too). Client CPU s counts "
            "this process's CPU time over the timed run, which in `thread` mode includes the server's.",
            "",
        ]
    if "mlserver" in result:
        m = result["mlserver"]
        lines += [
            "## Against Seldon MLServer on loopback",
            "",
            f"BARClassifier ({m['bar_queries']} queries, batch_size=20, n_directions=4) on the digits model: "
            f"{m['in_process_queries_per_s']:.0f} queries/s in-process, {m['protocol_queries_per_s']:.0f} "
            f"queries/s through the protocol ({m['requests']} requests): the protocol costs "
            f"{m['overhead_ratio']:.1f}x. Billed by the client: {m['billed']}; counted by the MLServer runtime: "
            f"{m['server_count']} ({m['cache_hits']} cache hits).",
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="stages,throughput,mlserver")
    p.add_argument("--reps-scale", type=float, default=1.0, help="scale the repetitions of the stage timings")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--datatype", default="UINT8", help="throughput: the server's declared input type")
    p.add_argument("--concurrency", type=int, default=8, help="throughput: the client's max_concurrency")
    p.add_argument(
        "--server",
        default="thread,process",
        help="throughput: where the server runs, 'thread' (this process, one GIL) and/or 'process' (bar serve)",
    )
    p.add_argument("--bar-queries", type=int, default=4000)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "open_inference"))
    p.add_argument("--merge", action="store_true", help="keep the other parts' results from the last run")
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    out = Path(args.out)
    result = json.loads(out.with_suffix(".json").read_text()) if args.merge else {}
    load = [round(v, 2) for v in os.getloadavg()]
    result["args"] = vars(args)
    result.setdefault("load_by_part", {}).update({part: load for part in parts})
    if "stages" in parts:
        result["stages"] = stages(args)
    if "cache" in parts:
        result["cache"] = cache_cases(args)
    if "throughput" in parts:
        result["throughput"] = throughput(args)
    if "mlserver" in parts:
        result["mlserver"] = mlserver_overhead(args)
    command = ("python benchmarks/open_inference.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    result.setdefault("commands", {}).update({part: command for part in parts})
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result) + "\n")


if __name__ == "__main__":
    main()
