"""Scale-out on Ray: distributed audit speed-up, a shared rate limit and budget, the actor's overhead.

Three measurements, one JSON + markdown:

1. **CPU-bound audit on a local model.** Square Attack and HopSkipJump on the
   CIFAR-subset SmallCNN (``benchmarks/common.py``), ``--n`` images, once in
   one process (``executor="local"``) and once over Ray with ``--workers``
   CPUs; wall times, their ratio, Ray's overhead per task (wall time of the Ray
   run less the chunks' own compute, divided by the tasks), and whether the
   per-image results are identical.
2. **Remote, shared limit.** ``--remote-workers`` Ray workers, each with its own
   ``RemoteModel``, sharing one ``SharedTokenBucket`` at ``--rate`` req/s and one
   ``SharedRemoteLedger`` against the local server (same limit, injected 10%
   429s): sustained request rate, requests over the server's limit (throttles
   not injected), lost images, billed vs the server's count vs the ledger.
3. **Overhead per request**: one shared-ledger actor round trip beside one HTTP
   round trip to the local server.

Run the small version (minutes on a shared 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/scale_ray.py --small

and the full one (400 images; needs two quiet cores)::

    OMP_NUM_THREADS=1 python benchmarks/scale_ray.py --n 400

Writes ``benchmarks/results/scale_ray[_small].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def _warm() -> int:
    import time as _time

    import torch  # noqa: F401

    import bar_sdk.attacks  # noqa: F401

    _time.sleep(0.5)  # hold this worker so that the next warm-up task starts another
    return os.getpid()


def audit_speedup(args, ray) -> dict:
    import torch
    from common import as_float, load_cifar, source_model

    from bar_sdk.audit import audit

    torch.set_num_threads(1)
    model, info = source_model(Path(args.data_dir), {"epochs": args.epochs} if args.epochs else None)
    _, _, Xte, yte, _ = load_cifar(Path(args.data_dir))
    x, y = as_float(Xte[: args.n]), yte[: args.n]
    kw = dict(attacks=["square", "hopskipjump"], eps=[args.eps], max_queries=args.max_queries, random_state=0)
    t0 = time.perf_counter()
    local = audit(model, x, y, **kw)
    t_local = time.perf_counter() - t0
    # Start the workers (a Python process each, importing torch) before the clock: a one-time cost.
    t0 = time.perf_counter()
    warm = ray.remote(_warm).options(num_cpus=1)
    ray.get([warm.remote() for _ in range(int(ray.cluster_resources().get("CPU", 1)))])
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    spread = audit(model, x, y, executor="ray", chunk_size=args.chunk_size, **kw)
    t_ray = time.perf_counter() - t0
    same = all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for name in local.results
        for a, b in zip(local.results[name], spread.results[name], strict=True)
        for f in ("x_adv", "success", "queries")
    )
    ex = spread.executor
    workers = int(ray.cluster_resources().get("CPU", 1))
    overhead = (ex["wall_seconds"] * workers - ex["task_seconds"]) / ex["chunks"]
    return {
        "n_images": args.n,
        "max_queries": args.max_queries,
        "eps": args.eps,
        "model": info,
        "workers": workers,
        "worker_startup_seconds": round(startup, 2),
        "local_seconds": round(t_local, 2),
        "ray_seconds": round(t_ray, 2),
        "ratio": round(t_ray / t_local, 3),
        "identical_per_image_results": bool(same),
        "chunks": ex["chunks"],
        "chunk_size": ex["chunk_size"],
        "ray_overhead_per_task_seconds": round(overhead, 4),
        "total_queries": local.total_queries,
    }


class _RemoteWorker:
    """One worker (a Ray actor, started before the clock): its own RemoteModel on the shared ledger and bucket."""

    def __init__(self, base_url, api_key, ledger, bucket, seed, batch, labels, shape, concurrency):
        from bar_sdk.adapters.remote import RemoteModel, RetryPolicy

        self.model = RemoteModel.from_preset(
            "clarifai",
            base_url=base_url,
            api_key=api_key,
            model_id="demo",
            labels=labels,
            input_shape=shape,
            batch_size=batch,
            ledger=ledger,
            rate_limiter=bucket,
            max_concurrency=concurrency,
            retry=RetryPolicy(initial=0.05, maximum=1.0, max_attempts=12, random_state=seed),
        )
        self.seed, self.batch, self.shape, self.concurrency = seed, batch, shape, concurrency

    def ready(self) -> bool:
        return True

    def run(self, n: int):
        from bar_sdk import QueryBudgetExceeded

        x = np.random.default_rng(self.seed).random((n, *self.shape)).astype(np.float32)
        answered, step = 0, self.concurrency * self.batch  # each call: `concurrency` requests in flight
        started = time.time()
        for start in range(0, n, step):
            try:
                answered += len(self.model.predict_proba(x[start : start + step]))
            except QueryBudgetExceeded:
                break
        self.model.close()
        return answered, started, time.time()


def shared_limit(args, ray) -> dict:
    from bar_sdk.adapters.ray import SharedRemoteLedger, SharedTokenBucket
    from bar_sdk.adapters.server import DemoModel, Faults, serve

    shape, model = (1, 8, 8), DemoModel((1, 8, 8), n_classes=5, random_state=2)
    labels = list(model.labels)
    ledger = SharedRemoteLedger.create("bench-ledger", max_queries=args.budget)
    bucket = SharedTokenBucket.create("bench-rate", args.rate)
    # ask for more than the budget allows
    per_worker = -(-args.budget // args.remote_workers) + args.concurrency * args.batch
    try:
        with serve(model, rate_limit=args.rate, faults=Faults(rate_429=0.1, random_state=0)) as server:
            actor = ray.remote(_RemoteWorker).options(num_cpus=0, max_restarts=0, max_task_retries=0)
            workers = [
                actor.remote(
                    server.base_url, server.api_key, ledger, bucket, s, args.batch, labels, shape, args.concurrency
                )
                for s in range(args.remote_workers)
            ]
            ray.get([w.ready.remote() for w in workers])
            runs = ray.get([w.run.remote(per_worker) for w in workers])
            answered = [r[0] for r in runs]
            # From the first worker's first request to the last worker's end (the budget runs out for all
            # at about the same time; worker start-up is not the API's pace).
            elapsed = max(r[2] for r in runs) - min(r[1] for r in runs)
            stats = server.stats()
            # one actor round trip vs one HTTP round trip
            n = 200
            t0 = time.perf_counter()
            for _ in range(n):
                ledger.snapshot()
            actor_rt = (time.perf_counter() - t0) / n
            import httpx

            with httpx.Client() as client:
                t0 = time.perf_counter()
                for _ in range(50):
                    client.get(server.base_url + "/_stats", headers={"X-Admin-Key": server.admin_key})
                http_rt = (time.perf_counter() - t0) / 50
        snap = ledger.snapshot()
    finally:
        ledger.kill()
        bucket.kill()
    served = stats.requests - stats.injected.get("429", 0)
    over = stats.throttled  # the server's own limit refused these (injected 429s are counted apart)
    return {
        "workers": args.remote_workers,
        "concurrency_per_worker": args.concurrency,
        "rate_limit": args.rate,
        "budget": args.budget,
        "batch": args.batch,
        "seconds": round(elapsed, 2),
        "requests": stats.requests,
        "served_requests": served,
        "sustained_fraction_of_limit": round(served / elapsed / args.rate, 3),
        "over_limit_requests": over,
        "over_limit_fraction": round(over / max(stats.requests, 1), 4),
        "injected_429": stats.injected.get("429", 0),
        "billed_server": stats.billed,
        "billed_ledger": snap["billed"],
        "answered_by_workers": int(sum(answered)),
        "lost": int(snap["billed"] - sum(answered)),
        "unconfirmed": snap["unconfirmed"],
        "actor_round_trip_ms": round(actor_rt * 1e3, 3),
        "http_round_trip_ms": round(http_rt * 1e3, 3),
    }


PAPER = """## Paper estimate: the same audit on 64 GPU workers

Take the measured audit above and scale it: {queries:,} model queries for {n} images here, so
about {qpi:,.0f} queries per image, all sent in batches by the attacks.

- **Local models on 64 GPUs.** A CIFAR-sized CNN answers ~50,000 images/s on one modern GPU
  (batches of a few hundred), so one worker does about {per_gpu:,.0f} images/s of audit work
  ({qpi:,.0f} queries each) and 64 do {gpu64:,.0f} images/s: 10,000 images in about {t10k:.1f} s of
  model time. The model is no longer the bottleneck: the attacks' own NumPy work per query
  (proposals, projections, on the worker's CPU) and Ray's per-task overhead are
  ({overhead:.0f} ms measured per task here, worker start-up with its torch import included;
  chunks of 100+ images and long-lived workers amortise it).
  A local model needs no ledger actor (per-image budgets are per task), so the actor is not in
  the path.
- **One paid API.** The API's rate limit sets the pace whatever the cluster size: at 20 req/s
  and batches of 32 images, 640 images/s at most, so the {q10k:,} queries of 10,000 images take
  {api_hours:.1f} h at full rate, for 64 workers or 4. Each request makes about 5 calls to the
  actors (reserve, attempt, bill, cache hits, token), and an actor runs one call at a time: at the
  1.9 ms round trip of a quiet machine (CALIBRATION.md; {actor_ms:.1f} ms measured here, on a
  machine with {load} runnable jobs per core) one ledger actor serves about {actor_rps:,.0f} requests/s,
  {actor_margin:.0f}x a 20 req/s limit. The actor becomes the bottleneck only for an API allowing
  ~{actor_rps:,.0f} req/s; then give each API key its own ledger actor and split the budget.
  Cost: at $0.0012 per image the audit of 10,000 images costs ${cost:,.0f}, fixed by the number
  of queries, not by the cluster.
"""


def paper(audit_res: dict | None, remote: dict) -> str:
    queries = audit_res["total_queries"] if audit_res else 40_000
    n = audit_res["n_images"] if audit_res else 40
    qpi = queries / n
    per_gpu = 50_000 / qpi
    overhead = (audit_res["ray_overhead_per_task_seconds"] if audit_res else 0.05) * 1e3
    actor_ms = remote["actor_round_trip_ms"]
    actor_rps = 1000 / (5 * 1.9)
    load = round(os.getloadavg()[0] / (os.cpu_count() or 1), 1)
    q10k = int(qpi * 10_000)
    return PAPER.format(
        queries=queries,
        n=n,
        qpi=qpi,
        per_gpu=per_gpu,
        gpu64=64 * per_gpu,
        t10k=10_000 / (64 * per_gpu),
        overhead=overhead,
        q10k=q10k,
        api_hours=q10k / 640 / 3600,
        actor_ms=actor_ms,
        load=load,
        actor_rps=actor_rps,
        actor_margin=actor_rps / 20,
        cost=q10k * 0.0012,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="a short run on few images (for a shared machine)")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--max-queries", type=int, default=500)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--epochs", type=int, default=None, help="train the source CNN for this many epochs instead")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--remote-workers", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--budget", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per remote worker")
    p.add_argument("--skip-audit", action="store_true", help="measure the remote part only")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args()
    if args.small:
        args.n, args.max_queries, args.budget = min(args.n, 24), min(args.max_queries, 150), args.budget
        args.epochs = args.epochs or 2
    import ray

    ray.init(
        address="local",
        num_cpus=args.workers,
        include_dashboard=False,
        object_store_memory=300 * 1024**2,
        log_to_driver=False,
        runtime_env={
            "env_vars": {
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
        },
    )
    out = {"small": args.small, "argv": sys.argv[1:]}
    out["audit"] = None if args.skip_audit else audit_speedup(args, ray)
    out["shared_limit"] = shared_limit(args, ray)
    ray.shutdown()
    from common import machine

    out["machine"] = machine()
    name = "scale_ray_small" if args.small else "scale_ray"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    small = " (SMALL version: few images, a briefly trained CNN, a shared machine)" if args.small else ""
    md = [
        f"# Scale-out on Ray{small}",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/scale_ray.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other jobs "
        "share the cores: wall-time ratios measure the contention as much as Ray; the speed-up target "
        "needs two quiet cores). Ray workers were started before the clock (`worker_startup_seconds` "
        "in the JSON).",
        "",
    ]
    if out["audit"]:
        a = out["audit"]
        md += [
            "## Audit on a local model (Square + HopSkipJump, CIFAR-subset SmallCNN)",
            "",
            "| images | workers | local s | Ray s | ratio | identical per-image results | Ray overhead per task |",
            "|---|---|---|---|---|---|---|",
            f"| {a['n_images']} | {a['workers']} | {a['local_seconds']} | {a['ray_seconds']} | {a['ratio']} | "
            f"{a['identical_per_image_results']} | {a['ray_overhead_per_task_seconds'] * 1e3:.0f} ms |",
            "",
        ]
    r = out["shared_limit"]
    md += [
        "## Remote: one shared limit and budget (local server, 10% injected 429s)",
        "",
        "| workers | limit req/s | sustained (share of limit) | over the server's limit | billed (server / ledger) "
        "| lost | actor round trip | HTTP round trip |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['workers']} | {r['rate_limit']:g} | {r['sustained_fraction_of_limit']:.0%} | "
        f"{r['over_limit_requests']} ({r['over_limit_fraction']:.2%}) | "
        f"{r['billed_server']} / {r['billed_ledger']} | "
        f"{r['lost']} | {r['actor_round_trip_ms']} ms | {r['http_round_trip_ms']} ms |",
        "",
        paper(out["audit"], r),
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
