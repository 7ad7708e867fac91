"""A transfer matrix's tables and files: one row per (attack, source, target), its JSON document, the CSV,
the heatmap and the 8-bit adversarial images (:meth:`bar_sdk.transfer.TransferMatrix.save`)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.reporting.files import check_out_dir, write_json
from bar_sdk.reporting.plots import check_plots

__all__ = ["transfer_rows", "transfer_document", "write_transfer_csv", "write_transfer_json", "save_transfer_matrix"]


def transfer_rows(result: Any) -> list[dict[str, Any]]:
    """One flat record per (attack, source, target) of a :class:`~bar_sdk.transfer.TransferMatrix`."""
    out = []
    for a, attack in enumerate(result.attacks):
        for s, source in enumerate(result.sources):
            for t, target in enumerate(result.targets):
                out.append(
                    {
                        "attack": attack,
                        "source": source,
                        "target": target,
                        "success_rate": _num(result.rates[a, s, t]),
                        "fooled": int(result.fooled[a, s, t]),
                        "target_correct": int(result.n_correct[t]),
                        "success_rate_source_correct": _num(result.rates_source_correct[a, s, t]),
                        "white_box": bool(result.white_box[s, t]),
                        "source_white_box_rate": _num(result.source_rates[a, s]),
                        "target_clean_accuracy": _num(result.clean_accuracy[t]),
                        "max_linf": _num(result.max_linf[a, s]),
                        "mean_l2": _num(result.mean_l2[a, s]),
                    }
                )
    return out


def transfer_document(result: Any) -> dict[str, Any]:
    """Everything of a :class:`~bar_sdk.transfer.TransferMatrix` but the images, JSON-ready (``nan`` as ``None``)."""
    return {
        "attacks": list(result.attacks),
        "sources": list(result.sources),
        "targets": list(result.targets),
        "n_samples": result.n_samples,
        "rates": _nested(result.rates),
        "rates_source_correct": _nested(result.rates_source_correct),
        "fooled": result.fooled.tolist(),
        "n_correct": result.n_correct.tolist(),
        "clean_accuracy": _nested(result.clean_accuracy),
        "white_box": result.white_box.tolist(),
        "source_rates": _nested(result.source_rates),
        "source_accuracy": _nested(result.source_accuracy),
        "source_queries": result.source_queries.tolist(),
        "target_queries": dict(zip(result.targets, result.target_queries.tolist(), strict=False)),
        "max_linf": _nested(result.max_linf),
        "mean_l2": _nested(result.mean_l2),
        "wall_time": round(float(result.wall_time), 3),
    }


def write_transfer_csv(result: Any, path: str | Path) -> Path:
    """Write ``result.rows()`` as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_transfer_json(result: Any, path: str | Path) -> Path:
    """Write ``result.to_dict()`` as indented JSON."""
    return write_json(path, result.to_dict())


def save_transfer_matrix(result: Any, out_dir: str | Path, images: bool = True) -> dict[str, Path]:
    """Write ``transfer_matrix.csv``, ``.json``, ``.png`` into ``out_dir`` and, with ``images``, each
    (attack, source)'s 8-bit images to ``adversarial/<attack>__<source>.npz`` (keys ``images``, ``labels``)."""
    check_plots(out_dir, without="result.to_csv(...) / to_json(...)")
    out = check_out_dir(out_dir, allow_none=False)
    written = {
        "csv": result.to_csv(out / "transfer_matrix.csv"),
        "json": result.to_json(out / "transfer_matrix.json"),
        "png": result.plot(out / "transfer_matrix.png"),
    }
    if images:
        folder = out / "adversarial"
        folder.mkdir(parents=True, exist_ok=True)
        for a, attack in enumerate(result.attacks):
            for s, source in enumerate(result.sources):
                path = folder / f"{_slug(attack)}__{_slug(source)}.npz"
                np.savez_compressed(path, images=result.adversarial[a, s], labels=result.y)
                written[f"{attack}/{source}"] = path
    return written


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


def _nested(a: Any) -> Any:
    a = np.asarray(a)
    return _num(a) if a.ndim == 0 else [_nested(v) for v in a]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"
