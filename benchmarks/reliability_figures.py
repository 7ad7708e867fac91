"""The figures of docs/RELIABILITY.md: run the reliability tests at a larger scale and count.

    python benchmarks/reliability_figures.py --scale 3

Runs tests/promises/test_reliability_*.py in a child pytest with ``BAR_RELIABILITY_SCALE`` (hypothesis
examples, fault seeds and kill points multiplied by it) and ``BAR_RELIABILITY_FIGURES`` (the tests
append what they injected and survived, one JSON line each; see tests/helpers/_figures.py), then writes
benchmarks/results/reliability.json and .md. The test outcome is part of the figures: a figure
from a failing run is not reported as survived.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=3, help="multiplier of examples, fault seeds and kill points")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reliability"))
    return p.parse_args(argv)


def run_tests(scale: int, tmp: Path) -> tuple[dict, Counter, float]:
    lines, junit = tmp / "figures.jsonl", tmp / "junit.xml"
    env = {
        **os.environ,
        "BAR_RELIABILITY_SCALE": str(scale),
        "BAR_RELIABILITY_FIGURES": str(lines),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "promises").glob("test_reliability_*.py"))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *files],
        cwd=ROOT,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    suite = ET.parse(junit).getroot().find("testsuite")
    outcome = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    sums: Counter = Counter()
    if lines.exists():
        for line in lines.read_text().splitlines():
            row = json.loads(line)
            section = row.pop("section")
            sums.update({f"{section}.{k}": v for k, v in row.items()})
            sums[f"{section}.lines"] += 1
    return outcome, sums, wall


def table(outcome: dict, s: Counter, scale: int) -> list[tuple[str, str, str]]:
    injected = {k: s[f"faults.injected_{k}"] for k in ("429", "500", "slow", "malformed")}
    return [
        ("Fault injection", "runs under faults (BAR, SquareAttack, HopSkipJump)", f"{s['faults.runs']}"),
        ("", "HTTP requests sent", f"{s['faults.requests']}"),
        (
            "",
            "faults injected: 429 / 500 / timeout / malformed",
            f"{injected['429']} / {injected['500']} / {injected['slow']} / {injected['malformed']}",
        ),
        (
            "",
            "faults survived (same result as the fault-free run, nothing lost or paid twice by the client)",
            f"{sum(injected.values())}",
        ),
        (
            "",
            "requests timed out: injected delays + other answers slowed past the timeout by the load",
            f"{injected['slow']} + {s['faults.timeouts'] - injected['slow']}",
        ),
        (
            "",
            "images billed by the client / extra billed by the server for answers the client gave up on",
            f"{s['faults.billed']} / {s['faults.server_extra']} (bound: {s['faults.timed_out_images']})",
        ),
        (
            "Crash and resume",
            "SIGKILL points through the API, each resumed to the same program",
            f"{s['crash_api.points']}",
        ),
        (
            "",
            "images paid twice, all kill points together (allowed: one step each)",
            f"{s['crash_api.extra_billed']} (allowed {s['crash_api.step']})",
        ),
        ("", "damaged checkpoints refused whole, before any query", f"{s['checkpoint_damage.cases']}"),
        (
            "Budgets",
            "attack runs (7 black-box attacks, random budgets and batch sizes)",
            f"{s['budget_attacks.cases']}",
        ),
        ("", "images sent in them, each counted once, no budget exceeded", f"{s['budget_attacks.queries']}"),
        ("", "RemoteModel call sequences (budget, cache, concurrency)", f"{s['budget_remote.cases']}"),
        (
            "Secrets",
            "files and captured strings searched for the key (5 encodings)",
            f"{s['secrets.files']} files, {s['secrets.strings']} strings",
        ),
        ("Hostile answers", "bodies fuzzed through the 9 response readers", f"{s['fuzz_parsers.cases']}"),
        ("", "bodies fuzzed through RemoteModel end to end", f"{s['fuzz_client.cases']}"),
        (
            "All",
            f"tests run at scale {scale}: passed / failed / expected failures (known bugs)",
            (
                f"{outcome['tests'] - outcome['failures'] - outcome['errors'] - outcome['skipped']} / "
                f"{outcome['failures'] + outcome['errors']} / {outcome['skipped']}"
            ),
        ),
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outcome, sums, wall = run_tests(args.scale, Path(tmp))
    rows = table(outcome, sums, args.scale)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "scale": args.scale,
        "wall_seconds": round(wall, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "outcome": outcome,
    }
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "sums": dict(sorted(sums.items())), "table": rows}, indent=2) + "\n"
    )
    md = [
        f"# Reliability figures (scale {args.scale})",
        "",
        (
            f"`python benchmarks/reliability_figures.py --scale {args.scale}`: {wall:.0f} s on "
            f"{os.cpu_count()} CPU(s), Python {platform.python_version()}."
        ),
        "",
        "| promise | measured | figure |",
        "|---|---|---|",
    ]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if outcome["failures"] + outcome["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
