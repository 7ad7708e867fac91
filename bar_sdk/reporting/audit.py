"""The audit's report: ``report.json``, ``report.md`` and three PNG plots.

matplotlib is imported inside the functions (Agg backend, via
:mod:`bar_sdk.reporting.plots`), so importing bar-sdk configures nothing. The JSON
and markdown are written before any plot, so a plot that fails loses none
of the results the audit paid for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from bar_sdk.reporting.files import write_json
from bar_sdk.reporting.plots import pyplot

if TYPE_CHECKING:
    from bar_sdk.audit import AuditReport

__all__ = ["write_report", "success_curve"]

logger = logging.getLogger(__name__)


def success_curve(result: Any, grid: np.ndarray) -> np.ndarray:
    """Fraction of the attacked images fooled within ``q`` queries, for each ``q`` in ``grid``."""
    attacked = ~result.initially_adversarial
    if not attacked.any():
        return np.full(len(grid), np.nan)
    won = result.success & attacked
    q = result.queries[won]
    return np.array([(q <= g).sum() / attacked.sum() for g in grid])


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.0f}"


def _eps_words(norm: str, eps: float) -> str:
    if norm == "linf":
        return f"{eps:g} per pixel (about {eps * 255:.0f}/255 of the brightness range)"
    return f"{eps:g} in total (L2 norm of the change over all pixels)"


def _label(k: int, labels: Sequence[str] | None) -> str:
    if k < 0:
        return "?"
    return f"{k} ({labels[k]})" if labels is not None else str(k)


def _plot_success(report: AuditReport, path: Path) -> None:
    plt = pyplot()
    grid = np.unique(np.geomspace(1, max(report.max_queries, 2), 60).astype(int))
    n = len(report.eps)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, k in zip(axes[0], range(n), strict=False):
        for name, runs in report.results.items():
            ax.plot(grid, success_curve(runs[k], grid), label=name)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("queries per image")
        ax.set_title(f"eps = {report.eps[k]:g} ({report.norm})")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of correct images fooled")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_robust(report: AuditReport, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    eps = [0.0] + list(report.eps)
    for name, values in report.robust_accuracy.items():
        style = dict(color="black", lw=2.5) if name == "any attack" else dict(lw=1.2)
        ax.plot(eps, [report.clean_accuracy] + list(values), marker="o", label=name, **style)
    ax.set_xlabel(f"eps ({report.norm})")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pick_examples(report: AuditReport, n_examples: int) -> list[tuple[int, str, int]]:
    """``(image index, attack name, eps index)``: for each image the smallest eps at which it fell."""
    chosen: dict[int, tuple[str, int]] = {}
    for k in range(len(report.eps)):
        for name, runs in report.results.items():
            r = runs[k]
            for i in np.flatnonzero(r.success & ~r.initially_adversarial):
                chosen.setdefault(int(i), (name, k))
    order = sorted(chosen, key=lambda i: (chosen[i][1], i))[:n_examples]
    return [(i, chosen[i][0], chosen[i][1]) for i in order]


def _plot_examples(
    report: AuditReport, x: np.ndarray, picks: list[tuple[int, str, int]], path: Path, labels: Sequence[str] | None
) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(picks), 3, figsize=(6.6, 2.3 * len(picks)), squeeze=False)
    for row, (i, name, k) in zip(axes, picks, strict=False):
        r = report.results[name][k]
        adv = r.x_adv[i]
        diff = adv - x[i]
        scale = max(float(np.abs(diff).max()), 1e-12)
        for ax, img, title in (
            (row[0], x[i], f"clean: {_label(int(r.clean_label[i]), labels)}"),
            (row[1], adv, f"attacked: {_label(int(r.adv_label[i]), labels)}"),
            (row[2], 0.5 + 0.5 * diff / scale, f"change x{0.5 / scale:.0f}"),
        ):
            img = np.transpose(img, (1, 2, 0))
            ax.imshow(img[..., 0] if img.shape[2] == 1 else np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        row[0].set_ylabel(f"{name}, eps {report.eps[k]:g}")
        row[1].text(
            0.0,
            -0.08,
            f"{name}, eps={report.eps[k]:g}, {int(r.queries[i])} queries",
            transform=row[1].transAxes,
            fontsize=7,
            va="top",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(report: AuditReport, files: dict[str, str], picks: list[tuple[int, str, int]]) -> str:
    names = list(report.results)
    lines = [
        "# Robustness audit",
        "",
        f"Model: `{report.model}` · {report.n_samples} images · norm {report.norm} · "
        f"budgets eps = {', '.join(f'{e:g}' for e in report.eps)} · at most {report.max_queries} queries "
        "per image and attack",
        "",
        "## In plain words",
        "",
        f"- Without any attack the model classifies **{_pct(report.clean_accuracy)}** of the images correctly.",
    ]
    black = [nm for nm in names if report.results[nm][0].access != "gradient"]
    white = [nm for nm in names if nm not in black]
    for k, e in enumerate(report.eps):
        text = f"- Changing each image by at most {_eps_words(report.norm, e)}, "
        if black:
            best = max(black, key=lambda nm: report.success_rate[nm][k] or 0.0)
            rate, med = report.success_rate[best][k], report.median_queries[best][k]
            text += (
                f"an attacker who can only send images and read the answers made it wrong on **{_pct(rate)}** "
                f"of the correctly classified images (best attack: {best}, median {_num(med)} queries per "
                "fooled image). "
            )
        if white:
            best = max(white, key=lambda nm: report.success_rate[nm][k] or 0.0)
            text += (
                f"With the model's gradients (white-box, {best}) an attacker fools "
                f"**{_pct(report.success_rate[best][k])}**. "
            )
        together = _pct(report.robust_accuracy["any attack"][k])
        lines.append(text + f"Accuracy under every attack together: **{together}**.")
    cost = "" if report.cost is None else f" (about {report.cost:,.2f} at {report.price_per_query:g} per query)"
    lines += [f"- The audit sent **{report.total_queries:,}** images to the model{cost}.", ""]
    lines += [
        "## Accuracy under attack",
        "",
        "| eps | no attack | " + " | ".join(names) + " | any attack |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for k, e in enumerate(report.eps):
        cells = [_pct(report.robust_accuracy[nm][k]) for nm in names]
        lines.append(
            f"| {e:g} | {_pct(report.clean_accuracy)} | "
            + " | ".join(cells)
            + f" | **{_pct(report.robust_accuracy['any attack'][k])}** |"
        )
    lines += [
        "",
        "## Success and query cost of each attack",
        "",
        "| attack | eps | cap per image | success rate | median queries | mean queries | queries spent | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    caps = getattr(report, "caps", {})
    for nm in names:
        cap = caps.get(nm)
        cap = "shared budget" if nm in caps and cap is None else ("" if cap is None else f"{cap:,}")
        for k, r in enumerate(report.results[nm]):
            lines.append(
                f"| {nm} | {report.eps[k]:g} | {cap} | {_pct(r.success_rate)} | {_num(r.median_queries)} | "
                f"{_num(r.mean_queries)} | {r.total_queries:,} | {r.status} |"
            )
    lines += ["", "## Plots", ""]
    for key, title in (
        ("robust_accuracy_plot", "Accuracy under attack against the budget eps"),
        ("success_plot", "Share of correct images fooled against queries spent per image"),
        ("examples_plot", "Clean and attacked images with the model's answers"),
    ):
        if key in files:
            lines += [f"**{title}**", "", f"![{title}]({Path(files[key]).name})", ""]
    if not picks:
        lines += ["No image was fooled at these budgets, so there are no examples to show.", ""]
    lines += [
        "## How to read this",
        "",
        "- *eps* is the largest change allowed; Linf limits every pixel, L2 the total change.",
        "- *Success rate* counts only images the model got right without attack.",
        "- *Queries* are images sent to the model, the first (unchanged) image included; every one is counted.",
        "- *Any attack*: an image counts as robust only if every attack failed on it.",
        "- A low accuracy under attack at small eps means the model is easy to fool by someone who can only "
        "query it; a black-box audit gives an upper bound on true robustness (a stronger attacker may do better).",
        "",
    ]
    return "\n".join(lines)


def write_report(
    report: Any, x: np.ndarray, out_dir: Path, labels: Sequence[str] | None = None, n_examples: int = 6
) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and the plots into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out_dir / "report.json"), "markdown": str(out_dir / "report.md")}
    picks = _pick_examples(report, n_examples)
    _write_text(report, out_dir, files, picks)  # the results first, before any plot
    plots = [
        ("robust_accuracy_plot", "robust_accuracy_vs_eps.png", lambda p: _plot_robust(report, p)),
        ("success_plot", "success_vs_queries.png", lambda p: _plot_success(report, p)),
    ]
    if picks:
        plots.append(("examples_plot", "examples.png", lambda p: _plot_examples(report, x, picks, p, labels)))
    for key, name, draw in plots:
        try:
            draw(out_dir / name)
        except Exception as err:  # a plot is a picture of results already on disk: never lose them for it
            logger.warning(
                "audit report: %s not drawn (%s: %s); report.json and report.md are complete",
                name,
                type(err).__name__,
                err,
            )
            continue
        files[key] = str(out_dir / name)
    _write_text(report, out_dir, files, picks)  # again, now listing the plots drawn
    return files


def _write_text(report: Any, out_dir: Path, files: dict[str, str], picks: list[tuple[int, str, int]]) -> None:
    """``report.json`` (first) and ``report.md``, listing the ``files`` written so far."""
    document = report.to_dict()
    document["examples"] = [
        {
            "index": i,
            "attack": nm,
            "eps": report.eps[k],
            "clean_label": int(report.results[nm][k].clean_label[i]),
            "adversarial_label": int(report.results[nm][k].adv_label[i]),
            "queries": int(report.results[nm][k].queries[i]),
        }
        for i, nm, k in picks
    ]
    document["files"] = {k: Path(v).name for k, v in files.items()}
    write_json(out_dir / "report.json", document)
    (out_dir / "report.md").write_text(_markdown(report, files, picks))
