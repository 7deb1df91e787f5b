#!/usr/bin/python3
"""Summary tables and figures of one or several qsweep results stores.

    analysis/report.py jobs/demo.h5 [more.h5 ...] --out report/

writes report/summary.md, report/report.html (the same, one self-contained file), report/summary.csv
and the figures as report/*.png, .pdf and .svg (analysis/README.md says what each is). A partial store (a sweep still running, or killed) gives what it holds; what is missing is
listed at the top of summary.md and on stderr.
"""
import argparse
import base64
import html
import os
import re
import sys

import matplotlib
matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qsweep_store  # noqa: E402

DPI = 120


# ---- the summary table -------------------------------------------------------------------------

def bench_stats(bench):
    """Median, p90 and mean of every benchmark measure per config, from the raw samples (numpy's
    default linear interpolation, as qsweep's attributes)."""
    if bench.empty:
        return pd.DataFrame()
    b = bench.copy()
    b["column"] = [m if pd.isna(n) else f"{m}_b{n}" for m, n in zip(b["measure"], b["batch_size"])]
    g = b.groupby(["config", "column"], sort=False)["value"]
    stats = pd.DataFrame({"median": g.median(), "p90": g.quantile(0.9), "mean": g.mean()})
    return stats.unstack("column")


def summary_table(store):
    """One row per config: accuracy with intervals, deltas, size, memory and speed."""
    rows = pd.DataFrame(index=store.configs.index)
    rows.index.name = "config"
    rows["store"] = store.configs["store"]
    rows["samples"] = store.samples.groupby("config").size().reindex(rows.index).fillna(0)
    # The store's /metrics attributes as they are; configs without metrics get empty cells, and
    # so do all configs where no store has metrics yet (then the attributes are nowhere).
    m = store.metrics.reindex(rows.index)
    metric = lambda name: m[name] if name in m else np.nan
    for score in ("em", "f1"):
        for suffix in ("", "_n", "_bca95_lo", "_bca95_hi", "_t95_lo", "_t95_hi", "_stderr"):
            rows[score + suffix] = metric(score + suffix)
    rows["baseline"] = metric("em_delta_baseline")
    for delta in ("em_delta", "f1_delta"):
        for suffix in ("", "_bca95_lo", "_bca95_hi", "_p", "_n"):
            rows[delta + suffix] = metric(delta + suffix)
    rows["metrics_source"] = metric("metrics_source")
    # The settings the store derived them with (baseline, bootstrap_resamples, seed).
    rows["derived_from"] = metric("derived_from")

    c = store.configs
    rows["device"] = c["device"]
    rows["device_kind"] = c["device_kind"]
    for col in ("model_bytes", "peak_memory_bytes", "bits_per_weight", "perplexity", "kl_vs_baseline",
                "decode_fraction_of_copy_bandwidth", "prefill_fraction_of_matmul_rate"):
        rows[col] = pd.to_numeric(c[col], errors="coerce")
    stats = bench_stats(store.bench)

    def stat(name, column):
        key = (name, column)
        return stats[key].reindex(rows.index) if key in stats else np.nan

    rows["prefill_ms_median"] = stat("median", "prefill_ms")
    rows["decode_ms_per_token_median"] = stat("median", "decode_ms_per_token")
    rows["decode_ms_per_token_p90"] = stat("p90", "decode_ms_per_token")
    for batch in batch_sizes(store.bench):
        rows[f"throughput_b{batch}_median"] = stat("median", f"throughput_b{batch}")
    rows["power_w_mean"] = stat("mean", "power_w")
    # Energy of one decoded token at batch 1: qsweep integrates the power samples over each timed
    # decode repeat. Stores that predate that have only the samples: their mean power times the
    # median time of a token.
    rows["energy_j_per_token"] = stat("median", "energy_j_per_token")
    older = rows["energy_j_per_token"].isna()
    rows.loc[older, "energy_j_per_token"] = (rows["power_w_mean"] *
                                             rows["decode_ms_per_token_median"] / 1000)[older]
    for measure in ("bandwidth_gb_s", "copy_bandwidth_gb_s", "prefill_tflop_s", "matmul_tflop_s"):
        rows[f"{measure}_median"] = stat("median", measure)

    view = qsweep_store.unit_view(store.units)
    # Wall time per phase: quantization (from /configs/<name>/prepare), then the units of each
    # kind that are done (their own seconds, load included where the unit prepared the model).
    rows["quantize_s"] = pd.to_numeric(c["quantize_seconds"], errors="coerce")
    done = view[view["status"] == "done"] if len(view) else view
    for kind, column in (("coqa", "evaluate_s"), ("bench", "bench_s"), ("sanity", "sanity_s")):
        seconds = (done[done["kind"] == kind].groupby("config")["seconds"].sum()
                   if len(done) else pd.Series(dtype=float))
        rows[column] = seconds.reindex(rows.index)
    for status in ("done", "todo", "failed"):
        counts = view[view["status"] == status].groupby("config").size() if len(view) else None
        rows[f"units_{status}"] = (counts.reindex(rows.index).fillna(0).astype(int)
                                   if counts is not None else 0)
    return rows


def batch_sizes(bench):
    if bench.empty:
        return []
    return sorted(bench.loc[bench["measure"] == "throughput", "batch_size"].dropna().unique())


# ---- figures -----------------------------------------------------------------------------------

def colors(configs):
    """One colour per config, the same in every figure."""
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(configs)}


def byte_scale(values):
    """Divisor and unit that keep sizes readable: MiB for small models, GiB for real ones."""
    top = np.nanmax(values) if len(values) and np.isfinite(values).any() else 0
    return (2 ** 30, "GiB") if top >= 2 ** 30 else (2 ** 20, "MiB")


def pareto_optimal(x, y):
    """True where no other point is at least as small in x and as large in y, and better in one."""
    keep = []
    for i in range(len(x)):
        dominated = any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i])
                        for j in range(len(x)) if j != i)
        keep.append(not dominated)
    return np.array(keep)


FIGURE_FORMATS = ("png", "pdf", "svg")  # PNG for the web, PDF and SVG for papers


def save(fig, out, name):
    """The figure as name.png (returned), .pdf and .svg."""
    path = os.path.join(out, name)
    stem = os.path.splitext(path)[0]
    for ext in FIGURE_FORMATS:
        fig.savefig(f"{stem}.{ext}", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def pvalue(p):
    """Every p in the report alike: three decimals, or p<0.001."""
    if p is None or pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def all_scores_zero(rows):
    """Every config with metrics scores 0 EM and 0 F1: a random-weight model (the demo's)."""
    scored = rows[rows["f1"].notna()]
    return len(scored) > 0 and bool((scored[["em", "f1"]] == 0).all().all())


def place_labels(ax, xs, ys, names, fontsize=8):
    """Names beside their points without overlapping: labels are stacked in display space,
    top to bottom, each moved down until it clears the ones placed before it; a label moved
    away from its point gets a thin leader line. Points at the same spot share one label."""
    ax.figure.canvas.draw()  # the final axes position, so pixels are pixels
    pixels = ax.transData.transform(np.column_stack([xs, ys]))
    groups = {}
    for (px, py), name in zip(pixels, names):
        groups.setdefault((round(px), round(py)), []).append(name)
    line = fontsize * ax.figure.dpi / 72 * 1.25
    placed = []  # (x0, x1, y0, y1) of labels in pixels
    inverse = ax.transData.inverted()
    for (px, py), group in sorted(groups.items(), key=lambda g: -g[0][1]):
        text = ", ".join(group)
        width = 0.6 * fontsize * ax.figure.dpi / 72 * len(text)
        x0, y = px + 8, py
        while any(x0 < b[1] and x0 + width > b[0] and y + line / 2 > b[2] and y - line / 2 < b[3]
                  for b in placed):
            y -= line
        placed.append((x0, x0 + width, y - line / 2, y + line / 2))
        tx, ty = inverse.transform((x0, y))
        ax.annotate(text, inverse.transform((px, py)), xytext=(tx, ty), textcoords="data",
                    fontsize=fontsize, va="center",
                    arrowprops=dict(arrowstyle="-", color="0.6", lw=0.6,
                                    shrinkA=0, shrinkB=4) if abs(y - py) > 2 else None)


def clearly_dominated(x, lo, hi):
    """True where another config is no larger and its whole 95% interval lies above this one's:
    better beyond the uncertainty, not just in the point estimate."""
    return np.array([any(x[j] <= x[i] and lo[j] > hi[i] for j in range(len(x)) if j != i)
                     for i in range(len(x))])


def fig_pareto(rows, palette, out, x_axis="size"):
    """F1 and EM against model size (or bits per weight) and peak memory, with BCa intervals;
    filled markers: not clearly dominated. The grey step line is the front of the point
    estimates, the band around it spans the front configs' intervals."""
    first = ("bits_per_weight", "bits per weight") if x_axis == "bits" else ("model_bytes", "model size")
    xs = [(x, label) for x, label in (first, ("peak_memory_bytes", "peak memory"))
          if rows[x].notna().any()]
    have = rows[rows["f1"].notna()]
    if not xs or have.empty or all_scores_zero(rows):
        return None
    fig, axes = plt.subplots(2, len(xs), figsize=(6 * len(xs), 8.5), squeeze=False)
    labels = []
    for col, (x, xlabel) in enumerate(xs):
        scale, unit = (1, "bits") if x == "bits_per_weight" else byte_scale(rows[x].to_numpy(dtype=float))
        for row, score in enumerate(("f1", "em")):
            ax = axes[row][col]
            d = have[have[x].notna()]
            if d.empty:
                ax.text(0.5, 0.5, "no benchmarks yet", ha="center", transform=ax.transAxes)
                continue
            px = d[x].to_numpy(dtype=float) / scale
            py = d[score].to_numpy(dtype=float)
            lo = d[score + "_bca95_lo"].to_numpy(dtype=float)
            hi = d[score + "_bca95_hi"].to_numpy(dtype=float)
            front = pareto_optimal(px, py)
            order = np.argsort(px[front])
            fx, fy = px[front][order], py[front][order]
            ax.fill_between(fx, lo[front][order], hi[front][order], step="post", color="0.85",
                            zorder=0, label="front's 95% intervals")
            ax.step(fx, fy, where="post", color="0.5", lw=1, zorder=1, label="Pareto front")
            dominated = clearly_dominated(px, lo, hi)
            for i, name in enumerate(d.index):
                ax.errorbar(px[i], py[i], yerr=[[py[i] - lo[i]], [hi[i] - py[i]]], fmt="o", ms=8,
                            color=palette[name], mfc="white" if dominated[i] else palette[name],
                            capsize=4, zorder=2)
            ax.set_xlabel(f"{xlabel} ({unit})" if unit != "bits" else xlabel)
            ax.set_ylabel(f"CoQA {score.upper()} (mean, 95% BCa interval)")
            ax.grid(alpha=0.3)
            ax.margins(x=0.2, y=0.15)
            labels.append((ax, px, py, list(d.index)))
    handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=c) for c in have.index]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="white",
                       label="hollow: another config is smaller and better beyond both intervals"),
                Line2D([], [], color="0.5", lw=1, label="Pareto front (point estimates)")]
    fig.suptitle("Accuracy vs size: filled = not clearly dominated (95% BCa intervals)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=9)
    for ax, px, py, names in labels:
        place_labels(ax, px, py, names)
    return save(fig, out, "accuracy_vs_size.png")


def fig_deltas(rows, palette, out):
    """Forest plot of the paired deltas vs the baseline, with BCa intervals and p-values."""
    d = rows[rows["f1_delta"].notna() & (rows.index != rows["baseline"])]
    if d.empty or all_scores_zero(rows):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.6 * len(d)), squeeze=False)
    y = np.arange(len(d))[::-1]
    for ax, score in zip(axes[0], ("em_delta", "f1_delta")):
        for yi, name in zip(y, d.index):
            v, lo, hi = d.loc[name, [score, score + "_bca95_lo", score + "_bca95_hi"]]
            ax.errorbar(v, yi, xerr=[[v - lo], [hi - v]], fmt="s", color=palette[name],
                        capsize=4, ms=7)
            p = pvalue(d.loc[name, score + '_p'])
            ax.annotate(f"p{p}" if p.startswith("<") else f"p={p}", (hi, yi), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.axvline(0, color="0.4", lw=1, ls="--")
        ax.set_yticks(y, d.index)
        ax.set_ylim(-0.7, len(d) - 0.3)
        # Symmetric about 0, so the eye compares both sides; at least +-0.05 so that identical
        # scores (all deltas 0) do not blow float noise up to the whole axis.
        reach = np.nanmax(np.abs(d[[score + "_bca95_lo", score + "_bca95_hi"]].to_numpy()))
        ax.set_xlim(-max(0.05, 1.35 * reach), max(0.05, 1.35 * reach))
        ax.set_xlabel(f"{score.split('_')[0].upper()}: config - baseline (mean, 95% BCa interval)")
        ax.grid(axis="x", alpha=0.3)
    baselines = ", ".join(sorted(set(d["baseline"].dropna())))
    fig.suptitle(f"Paired deltas vs baseline {baselines} (same samples, joined on id and turn)")
    fig.tight_layout()
    return save(fig, out, "deltas_vs_baseline.png")


def fig_throughput(bench, configs, palette, out):
    """Throughput per batch size, grouped by batch, one bar per config: median, min-max whisker."""
    t = bench[bench["measure"] == "throughput"] if len(bench) else bench
    if t.empty:
        return None
    batches = batch_sizes(bench)
    names = [c for c in configs if c in set(t["config"])]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(batches) * max(1, len(names) / 2)), 4.5))
    for i, name in enumerate(names):
        g = t[t["config"] == name].groupby("batch_size")["value"]
        med, lo, hi = (g.median().reindex(batches), g.min().reindex(batches),
                       g.max().reindex(batches))
        x = np.arange(len(batches)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, med, width, color=palette[name], label=name,
               yerr=[med - lo, hi - med], capsize=3, ecolor="0.2")
    ax.set_xticks(np.arange(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel("generated tokens/s (median; whisker min-max)")
    ax.set_title("Throughput by batch size")
    ax.legend(fontsize=8, ncol=min(5, len(names)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, out, "throughput.png")


def fig_kl(rows, palette, out):
    """KL from the baseline against model size: how far each quantization moves the model's
    predictions per byte saved, meaningful even where accuracy is not (random-init models)."""
    d = rows[rows["kl_vs_baseline"].notna() & rows["model_bytes"].notna()]
    if d.empty:
        return None
    scale, unit = byte_scale(d["model_bytes"].to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(8, 5))
    x = d["model_bytes"].to_numpy(dtype=float) / scale
    y = d["kl_vs_baseline"].to_numpy(dtype=float)
    for xi, yi, name in zip(x, y, d.index):
        ax.scatter([xi], [yi], color=palette[name], s=40, zorder=3)
    ax.set_xlabel(f"model size ({unit})")
    ax.set_ylabel("KL(baseline || config), nats per token")
    ax.set_title("Distance from the baseline's predictions vs model size (perplexity_text)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.2, y=0.15)
    fig.tight_layout()
    place_labels(ax, x, y, list(d.index))
    return save(fig, out, "kl_vs_size.png")


def fig_memory(rows, out):
    """Model size and peak memory per config."""
    d = rows[rows["model_bytes"].notna() | rows["peak_memory_bytes"].notna()]
    if d.empty:
        return None
    scale, unit = byte_scale(d[["model_bytes", "peak_memory_bytes"]].to_numpy(dtype=float))
    y = np.arange(len(d))[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.6 * len(d)))
    for offset, col, label, color in ((0.2, "model_bytes", "model size (weights)", "tab:blue"),
                                      (-0.2, "peak_memory_bytes", "peak memory", "tab:orange")):
        v = d[col].to_numpy(dtype=float) / scale
        bars = ax.barh(y + offset, v, 0.38, label=label, color=color)
        ax.bar_label(bars, [f"{x:.1f}" if np.isfinite(x) else "" for x in v], padding=3,
                     fontsize=8)
    ax.set_yticks(y, d.index)
    ax.set_xlabel(f"{unit}")
    devices = ", ".join(sorted(set(d["device"].dropna())))
    ax.set_title(f"Memory by config ({devices}; CPU peak memory is the process's max RSS)"
                 if "cpu" in devices else f"Memory by config ({devices})", fontsize=10)
    ax.margins(x=0.15)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save(fig, out, "memory.png")


def fig_latency(bench, configs, palette, out):
    """Prefill and decode latency per config: median bar, whisker to p90, raw repeats as dots."""
    measures = [m for m in ("prefill_ms", "decode_ms_per_token")
                if len(bench) and (bench["measure"] == m).any()]
    if not measures:
        return None
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 4.5), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        b = bench[bench["measure"] == measure]
        names = [c for c in configs if c in set(b["config"])]
        for i, name in enumerate(names):
            v = b.loc[b["config"] == name, "value"].to_numpy()
            med, p90 = np.median(v), np.percentile(v, 90)
            ax.bar(i, med, 0.6, color=palette[name], alpha=0.8)
            ax.errorbar(i, med, yerr=[[0], [p90 - med]], color="0.2", capsize=5)
            jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else [0]
            ax.scatter(i + np.asarray(jitter), v, s=12, color="black", zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0,
                      ha="right" if len(names) > 4 else "center")
        unit = qsweep_store.BENCH_UNITS[measure]
        title = "Prefill (batch 1)" if measure == "prefill_ms" else "Decode (batch 1)"
        ax.set_ylabel(f"{unit} (bar median, whisker p90, dots raw repeats)", fontsize=9)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, out, "latency.png")


def domain_table(samples, configs):
    """Mean F1 and EM per config and CoQA domain (`source`), and the samples per domain."""
    if not len(samples) or "source" not in samples:
        return None
    s = samples[samples["config"].isin(configs)]
    if s.empty:
        return None
    f1 = s.pivot_table(index="config", columns="source", values="f1", aggfunc="mean")
    em = s.pivot_table(index="config", columns="source", values="em", aggfunc="mean")
    n = s.groupby("source").size() // max(1, s["config"].nunique())
    order = [c for c in configs if c in f1.index]
    return f1.reindex(order), em.reindex(order), n


def fig_domains(domains, rows, out):
    """F1 per config and CoQA domain as a heat map, every cell labelled."""
    if domains is None or all_scores_zero(rows):
        return None
    f1, _, n = domains
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * f1.shape[1], 1.2 + 0.45 * f1.shape[0]))
    image = ax.imshow(f1.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(f1.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if v > 0.6 else "white")
    ax.set_xticks(range(f1.shape[1]), [f"{c}\n(n={n[c]})" for c in f1.columns], fontsize=8)
    ax.set_yticks(range(f1.shape[0]), f1.index, fontsize=8)
    fig.colorbar(image, ax=ax, label="F1 (mean over the domain's samples)")
    ax.set_title("CoQA F1 by domain (story source)", fontsize=10)
    fig.tight_layout()
    return save(fig, out, "domains.png")


def stored_compare(rows, a, b):
    """The paired deltas (b - a) as the store has them, when one of the pair is the other's
    baseline: qsweep's own intervals and p (its resamples and seed), not a second bootstrap."""
    def delta(config, sign):
        r = rows.loc[config]
        if pd.isna(r.get("f1_delta")):
            return None
        stats = {}
        for score in ("em", "f1"):
            lo, hi = r[f"{score}_delta_bca95_lo"], r[f"{score}_delta_bca95_hi"]
            stats[score] = {"": sign * r[f"{score}_delta"], "_bca95_lo": lo if sign > 0 else -hi,
                            "_bca95_hi": hi if sign > 0 else -lo, "_p": r[f"{score}_delta_p"],
                            "_n": r[f"{score}_delta_n"], "source": "store"}
        return stats
    if rows.loc[b, "baseline"] == a:
        return delta(b, +1)
    if rows.loc[a, "baseline"] == b:
        return delta(a, -1)
    return None


def compare_stats(pairs):
    """Paired deltas (b - a) of EM and F1 for one compared pair, computed here."""
    return {score: qsweep_store.paired_delta(pairs[score + "_b"].to_numpy(),
                                             pairs[score + "_a"].to_numpy())
            for score in ("em", "f1")}


def fig_compare(samples, a, b, stats, palette, out):
    """Two configs on the same samples: F1 scatter, EM agreement and the per-sample F1 deltas."""
    pairs = qsweep_store.paired_scores(samples, a, b)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))

    ax = axes[0]
    points, counts = np.unique(pairs[["f1_a", "f1_b"]].to_numpy(), axis=0, return_counts=True)
    ax.scatter(points[:, 0], points[:, 1], s=20 + 280 * counts / counts.max(), alpha=0.6, color=palette[b])
    for (x, y), n in zip(points, counts):
        if n > 1:
            ax.annotate(str(n), (x, y), ha="center", va="center", fontsize=8)
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel(f"F1 of {a}")
    ax.set_ylabel(f"F1 of {b}")
    ax.set_title(f"F1 per sample (n={len(pairs)}; marker size and label: count)", fontsize=10)

    ax = axes[1]
    right_a, right_b = pairs["em_a"] >= 1, pairs["em_b"] >= 1
    matrix = np.array([[(right_a & right_b).sum(), (right_a & ~right_b).sum()],
                       [(~right_a & right_b).sum(), (~right_a & ~right_b).sum()]])
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()))
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=14,
                color="white" if n > matrix.max() / 2 else "black")
    ax.set_xticks([0, 1], [f"{b} right", f"{b} wrong"])
    ax.set_yticks([0, 1], [f"{a} right", f"{a} wrong"])
    ax.set_title("Exact-match agreement (samples; right = EM 1)", fontsize=10)

    ax = axes[2]
    delta = pairs["f1_b"] - pairs["f1_a"]
    ax.hist(delta, bins=np.linspace(-1.05, 1.05, 22), color=palette[b], edgecolor="white")
    ax.axvline(0, color="0.4", ls="--", lw=1)
    ax.set_xlabel(f"F1 of {b} - F1 of {a}, per sample")
    ax.set_ylabel("samples")
    lines = [f"{s.upper()}: {v['']:+.3f} [{v['_bca95_lo']:+.3f}, {v['_bca95_hi']:+.3f}], "
             f"p{'' if pvalue(v['_p']).startswith('<') else '='}{pvalue(v['_p'])}"
             for s, v in stats.items()]
    ax.set_title(f"Paired delta {b} - {a}, 95% BCa\n" + "\n".join(lines), fontsize=10)
    fig.suptitle(f"{a} vs {b} on the same CoQA samples")
    fig.tight_layout()
    return save(fig, out, f"compare_{safe(a)}_vs_{safe(b)}.png")


def safe(name):
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


# ---- summary.md --------------------------------------------------------------------------------

def fmt(x, digits=3):
    return "" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def bracket(lo, hi, sign=False):
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    f = "{:+.3f}" if sign else "{:.3f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def interval(row, key, sign=False):
    return bracket(row.get(key + "_lo"), row.get(key + "_hi"), sign)


def md_table(header, body):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def size(x):
    if pd.isna(x):
        return ""
    return f"{x / 2 ** 30:.2f} GiB" if x >= 2 ** 30 else f"{x / 2 ** 20:.1f} MiB"


def percent(fraction):
    return "" if fraction is None or pd.isna(fraction) else f"{100 * fraction:.1f}%"


def device_label(row):
    """The device, and where the figures are a CPU's (smaller yardsticks), that they are."""
    device = row["device"] or ""
    return f"{device} (CPU figures)" if row.get("device_kind") == "cpu" else device


def summary_md(store, rows, compared, figures, domains=None):
    prov = store.provenance
    out = [f"# qsweep report: {', '.join(dict.fromkeys(prov['name']))}", ""]
    for path, p in prov.iterrows():
        out.append(f"- `{path}`: sweep {p.get('name')}, updated {p.get('updated_at')}, "
                   f"qsweep {p.get('qsweep_version')} {p.get('qsweep_git', '') or ''}, "
                   f"baseline {p.get('baseline')}")
    out += ["", "## Missing", ""]
    out += [f"- {m}" for m in store.missing] or ["Nothing: every planned unit is done."]

    out += ["", "## Accuracy (CoQA)", "",
            "Mean over samples; intervals are 95%: BCa bootstrap and Student t.", ""]
    if all_scores_zero(rows):
        out += ["**Every config scores 0 EM and 0 F1**, as a model with random weights does (the "
                "demo's): there is no accuracy to compare, so the accuracy figures and the "
                "per-domain table are left out. Perplexity and KL from the baseline below still "
                "tell the configs apart.", ""]
    out.append(md_table(
        ["config", "n", "EM", "EM BCa", "EM t", "F1", "F1 BCa", "F1 t"],
        [[c, fmt(r["em_n"], 0), fmt(r["em"]), interval(r, "em_bca95"), interval(r, "em_t95"),
          fmt(r["f1"]), interval(r, "f1_bca95"), interval(r, "f1_t95")]
         for c, r in rows.iterrows()]))

    out += ["", "## Paired deltas vs baseline", "",
            "config - baseline over the same samples (joined on id and turn), 95% BCa interval, "
            "two-sided bootstrap p.", ""]
    out.append(md_table(
        ["config", "baseline", "n", "ΔEM", "ΔEM BCa", "p", "ΔF1", "ΔF1 BCa", "p"],
        [[c, r["baseline"] or "", fmt(r["em_delta_n"], 0), fmt(r["em_delta"]),
          interval(r, "em_delta_bca95", sign=True), pvalue(r["em_delta_p"]), fmt(r["f1_delta"]),
          interval(r, "f1_delta_bca95", sign=True), pvalue(r["f1_delta_p"])]
         for c, r in rows.iterrows() if c != r["baseline"]]))

    if domains is not None and not all_scores_zero(rows):
        f1, em, n = domains
        out += ["", "## By domain (CoQA story source)", "",
                "Mean F1 (EM in parentheses) over each domain's samples; n: samples per domain "
                "and config.", ""]
        out.append(md_table(["config"] + [f"{c} (n={n[c]})" for c in f1.columns],
                            [[c] + [f"{fmt(f1.loc[c, d])} ({fmt(em.loc[c, d])})"
                                    for d in f1.columns] for c in f1.index]))

    if rows["perplexity"].notna().any():
        out += ["", "## Perplexity", "",
                "On the job's perplexity_text; KL(baseline || config) in nats per token over the "
                "same tokens, from the sanity unit.", ""]
        out.append(md_table(["config", "perplexity", "KL vs baseline"],
                            [[c, fmt(r["perplexity"], 4), fmt(r["kl_vs_baseline"], 6)]
                             for c, r in rows.iterrows()]))

    batches = batch_sizes(store.bench)
    out += ["", "## Size, memory and speed", ""]
    out.append(md_table(
        ["config", "device", "model size", "peak memory", "prefill ms (median)",
         "prefill % of matmul", "decode ms/token median", "p90"] +
        [f"tokens/s b{b}" for b in batches] +
        ["energy J/token", "bandwidth GB/s", "% of copy bandwidth"],
        [[c, device_label(r), size(r["model_bytes"]), size(r["peak_memory_bytes"]),
          fmt(r["prefill_ms_median"], 2), percent(r["prefill_fraction_of_matmul_rate"]),
          fmt(r["decode_ms_per_token_median"], 2), fmt(r["decode_ms_per_token_p90"], 2)] +
         [fmt(r[f"throughput_b{b}_median"], 1) for b in batches] +
         [fmt(r["energy_j_per_token"], 4), fmt(r["bandwidth_gb_s_median"], 1),
          percent(r["decode_fraction_of_copy_bandwidth"])]
         for c, r in rows.iterrows()]))
    out += ["", "Throughput is the median over repeats of the timed decode steps (prefill and "
            "graph capture untimed); bandwidth = bytes a decode step reads (weights, norms, KV "
            "cache at its length) / step time, as a percentage of the copy bandwidth measured in "
            "the same run; prefill as a percentage of the matmul rate measured in the same run; "
            "energy per token integrated from the power sampled during the timed decode, empty "
            "where power was not measured (CPU). How each was measured:", ""]
    if "method" in store.configs:
        for (device, method), group in store.configs.groupby(["device", "method"]):
            out.append(f"- {', '.join(group.index)} on {device}: {method}")

    out += ["", "## Wall time per phase", "",
            "Seconds: quantization as the preparation records it (loading excluded; 0 where the "
            "config has no quantization step), then the sum of each kind of unit's run times.", ""]
    out.append(md_table(["config", "quantize", "evaluate (CoQA)", "sanity, perplexity, KL",
                         "benchmark"],
                        [[c, fmt(r["quantize_s"], 1), fmt(r["evaluate_s"], 1),
                          fmt(r["sanity_s"], 1), fmt(r["bench_s"], 1)]
                         for c, r in rows.iterrows()]))

    if compared:
        out += ["", "## Compared pairs", "",
                "Second - first over the same samples, 95% BCa interval, two-sided bootstrap p: "
                "the store's own where one of the pair is the other's baseline, else computed "
                "here (10000 resamples, seed 1234).", ""]
        out.append(md_table(
            ["first", "second", "source", "n", "ΔEM", "ΔEM BCa", "p", "ΔF1", "ΔF1 BCa", "p"],
            [[a, b, s["em"].get("source", "recomputed here"), fmt(s["em"]["_n"], 0)] +
             [x for score in ("em", "f1") for x in (
                 fmt(s[score][""]), bracket(s[score]["_bca95_lo"], s[score]["_bca95_hi"], True),
                 pvalue(s[score]["_p"]))]
             for (a, b), s in compared.items()]))

    if len(store.errors):
        out += ["", "## Errors", ""]
        out.append(md_table(["unit", "rank", "host", "message"],
                            [[e["unit"], e["rank"], e["host"], e["message"].replace("|", "\\|")]
                             for _, e in store.errors.iterrows()]))

    out += ["", "## Figures", "", "Each figure is also written as PDF and SVG beside the PNG.", ""]
    for path, caption in figures:
        out += [f"### {caption}", "", f"![{caption}]({os.path.basename(path)})", ""]
    return "\n".join(out) + "\n"


# ---- report.html -------------------------------------------------------------------------------

HTML_STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def inline(text):
    """The Markdown summary.md uses inside a line: `code` and **bold**, the rest escaped."""
    out = html.escape(text)
    out = re.sub(r"`([^`]*)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def markdown_to_html(markdown, out):
    """summary.md as one self-contained page: the figures embedded as data URIs, no file or
    network reference, so it can be mailed or attached as is."""
    body, table, bullets = [], [], []

    def flush():
        if table:
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in table
                    if not re.fullmatch(r"\|?[\s:|-]+\|?", line)]
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in rows[0]) +
                        "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) +
                                          "</tr>" for r in rows[1:]) + "</table>")
            table.clear()
        if bullets:
            body.append("<ul>" + "".join(f"<li>{inline(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in markdown.splitlines():
        image = re.fullmatch(r"!\[(.*)\]\((.*)\)", line)
        if line.startswith("|"):
            table.append(line.replace("\\|", "&#124;"))
            continue
        if line.startswith("- "):
            bullets.append(line[2:])
            continue
        flush()
        heading = re.match(r"(#+) (.*)", line)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif image:
            with open(os.path.join(out, image.group(2)), "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            body.append(f'<p><img alt="{html.escape(image.group(1))}" '
                        f'src="data:image/png;base64,{data}"></p>')
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    title = re.sub(r"<[^>]+>", "", body[0]) if body else "qsweep report"
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{HTML_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---- main --------------------------------------------------------------------------------------

def write_report(paths, out, prefix=False, x_axis="size"):
    """Everything into `out`; returns (written paths, missing)."""
    store = qsweep_store.load(paths, prefix=prefix)
    os.makedirs(out, exist_ok=True)
    rows = summary_table(store)
    configs = list(store.configs.index)
    palette = colors(configs)

    figures = []

    def figure(path, caption, what_is_missing):
        if path:
            figures.append((path, caption))
        else:
            store.missing.append(f"figure '{caption}' not drawn: {what_is_missing}")

    zero = "every config scores 0 (random weights)"
    figure(fig_pareto(rows, palette, out, x_axis),
           "Accuracy vs bits per weight and peak memory" if x_axis == "bits"
           else "Accuracy vs model size and peak memory",
           zero if all_scores_zero(rows) else "needs configs with both metrics and benchmarks")
    figure(fig_deltas(rows, palette, out), "Paired deltas vs baseline",
           zero if all_scores_zero(rows) else "no config has a paired delta vs the baseline")
    domains = domain_table(store.samples, configs)
    figure(fig_domains(domains, rows, out), "F1 by CoQA domain",
           zero if all_scores_zero(rows) else "no samples yet")
    figure(fig_throughput(store.bench, configs, palette, out), "Throughput by batch size",
           "no throughput benchmarks")
    figure(fig_kl(rows, palette, out), "KL from the baseline vs model size",
           "needs perplexity_text and benchmarks")
    figure(fig_memory(rows, out), "Memory by config", "no benchmarks")
    figure(fig_latency(store.bench, configs, palette, out), "Prefill and decode latency",
           "no latency benchmarks")
    compared = {}
    for a, b in store.compare:
        if a not in configs or b not in configs:
            continue  # already listed as missing by the loader
        pairs = qsweep_store.paired_scores(store.samples, a, b) if len(store.samples) else []
        if len(pairs) == 0:
            store.missing.append(f"compare [{a}, {b}]: no samples scored by both")
            continue
        compared[(a, b)] = stored_compare(rows, a, b) or compare_stats(pairs)
        figure(fig_compare(store.samples, a, b, compared[(a, b)], palette, out),
               f"{a} vs {b} per sample", "")

    csv_path = os.path.join(out, "summary.csv")
    rows.to_csv(csv_path, float_format="%.17g")
    md_path = os.path.join(out, "summary.md")
    markdown = summary_md(store, rows, compared, figures, domains)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown)
    html_path = os.path.join(out, "report.html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(markdown_to_html(markdown, out))
    return [md_path, html_path, csv_path] + [p for p, _ in figures], store.missing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stores", nargs="+", help="qsweep results stores (.h5)")
    parser.add_argument("--out", required=True, help="directory for summary.md, .csv and PNGs")
    parser.add_argument("--x", choices=("size", "bits"), default="size", dest="x_axis",
                        help="x axis of the accuracy figure: model size or bits per weight")
    parser.add_argument("--prefix", action="store_true",
                        help="name configs <sweep>:<config>, to keep same-named configs of "
                             "different sweeps apart")
    args = parser.parse_args(argv)
    try:
        written, missing = write_report(args.stores, args.out, args.prefix, args.x_axis)
    except (OSError, ValueError) as e:
        print(f"report: {e}", file=sys.stderr)
        return 1
    for m in missing:
        print(f"missing: {m}", file=sys.stderr)
    print("wrote:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
