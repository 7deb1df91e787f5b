#!/usr/bin/python3
"""Summary tables and figures of one or several qsweep results stores.

    analysis/report.py jobs/demo.h5 [more.h5 ...] --out report/

writes report/summary.md, report/summary.csv and report/*.png (analysis/README.md says what each
is). A partial store (a sweep still running, or killed) gives what it holds; what is missing is
listed at the top of summary.md and on stderr.
"""
import argparse
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
    for col in ("model_bytes", "peak_memory_bytes", "perplexity", "kl_vs_baseline",
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


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def fig_pareto(rows, palette, out):
    """F1 and EM against model size and peak memory, with BCa intervals; Pareto front marked."""
    xs = [(x, label) for x, label in (("model_bytes", "model size"),
                                      ("peak_memory_bytes", "peak memory"))
          if rows[x].notna().any()]
    have = rows[rows["f1"].notna()]
    if not xs or have.empty:
        return None
    fig, axes = plt.subplots(2, len(xs), figsize=(5.5 * len(xs), 8), squeeze=False)
    for col, (x, xlabel) in enumerate(xs):
        scale, unit = byte_scale(rows[x].to_numpy(dtype=float))
        for row, score in enumerate(("f1", "em")):
            ax = axes[row][col]
            d = have[have[x].notna()]
            if d.empty:
                ax.text(0.5, 0.5, "no benchmarks yet", ha="center", transform=ax.transAxes)
                continue
            px = d[x].to_numpy(dtype=float) / scale
            py = d[score].to_numpy(dtype=float)
            front = pareto_optimal(px, py)
            order = np.argsort(px[front])
            ax.step(px[front][order], py[front][order], where="post", color="0.6", lw=1,
                    zorder=1, label="Pareto front")
            for i, name in enumerate(d.index):
                lo, hi = d.loc[name, score + "_bca95_lo"], d.loc[name, score + "_bca95_hi"]
                ax.errorbar(px[i], py[i], yerr=[[py[i] - lo], [hi - py[i]]], fmt="o", ms=8,
                            color=palette[name], mfc=palette[name] if front[i] else "white",
                            capsize=4, zorder=2)
            # Configs at (nearly) the same point share one label, not a smudge of overlapping
            # text: same size and score is common (bf16 and fp16; nf4 and fp4 at 0 F1).
            span_x, span_y = np.ptp(px) or 1, np.ptp(py) or 1
            at = {}
            for i, name in enumerate(d.index):
                cell = (round(px[i] / span_x * 40), round(py[i] / span_y * 40))
                at.setdefault(cell, (px[i], py[i], []))[2].append(name)
            for x_, y_, names in at.values():
                ax.annotate("\n".join(names), (x_, y_), xytext=(8, 0),
                            textcoords="offset points", fontsize=8, va="center")
            ax.set_xlabel(f"{xlabel} ({unit})")
            ax.set_ylabel(f"CoQA {score.upper()} (mean, 95% BCa interval)")
            ax.grid(alpha=0.3)
            ax.margins(x=0.15, y=0.15)
    # Which configs are Pareto-optimal differs between panels, so the legend names colours only
    # and the marker fill says it in each panel.
    handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=c) for c in have.index]
    handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="white",
                       label="hollow: not Pareto-optimal"),
                Line2D([], [], color="0.6", lw=1, label="Pareto front")]
    fig.suptitle("Accuracy vs size: filled = Pareto-optimal (no config smaller and more accurate)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=9)
    return save(fig, out, "accuracy_vs_size.png")


def fig_deltas(rows, palette, out):
    """Forest plot of the paired deltas vs the baseline, with BCa intervals and p-values."""
    d = rows[rows["f1_delta"].notna() & (rows.index != rows["baseline"])]
    if d.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.6 * len(d)), squeeze=False)
    y = np.arange(len(d))[::-1]
    for ax, score in zip(axes[0], ("em_delta", "f1_delta")):
        for yi, name in zip(y, d.index):
            v, lo, hi = d.loc[name, [score, score + "_bca95_lo", score + "_bca95_hi"]]
            ax.errorbar(v, yi, xerr=[[v - lo], [hi - v]], fmt="s", color=palette[name],
                        capsize=4, ms=7)
            ax.annotate(f"p={d.loc[name, score + '_p']:.3g}", (hi, yi), xytext=(6, 0),
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
    for name, r in d.iterrows():
        x = r["model_bytes"] / scale
        ax.scatter([x], [r["kl_vs_baseline"]], color=palette[name], s=40, zorder=3)
        ax.annotate(name, (x, r["kl_vs_baseline"]), xytext=(5, 2), textcoords="offset points",
                    fontsize=8)
    ax.set_xlabel(f"model size ({unit})")
    ax.set_ylabel("KL(baseline || config), nats per token")
    ax.set_title("Distance from the baseline's predictions vs model size (perplexity_text)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
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


def compare_stats(pairs):
    """Paired deltas (b - a) of EM and F1 for one compared pair."""
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
             f"p={v['_p']:.3g}" for s, v in stats.items()]
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


def summary_md(store, rows, compared, figures):
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
          interval(r, "em_delta_bca95", sign=True), fmt(r["em_delta_p"], 4), fmt(r["f1_delta"]),
          interval(r, "f1_delta_bca95", sign=True), fmt(r["f1_delta_p"], 4)]
         for c, r in rows.iterrows() if c != r["baseline"]]))

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
                "Second - first over the same samples, 95% BCa interval, two-sided bootstrap p "
                "(computed here: 10000 resamples, seed 1234).", ""]
        out.append(md_table(
            ["first", "second", "n", "ΔEM", "ΔEM BCa", "p", "ΔF1", "ΔF1 BCa", "p"],
            [[a, b, s["em"]["_n"]] +
             [x for score in ("em", "f1") for x in (
                 fmt(s[score][""]), bracket(s[score]["_bca95_lo"], s[score]["_bca95_hi"], True),
                 fmt(s[score]["_p"], 4))]
             for (a, b), s in compared.items()]))

    if len(store.errors):
        out += ["", "## Errors", ""]
        out.append(md_table(["unit", "rank", "host", "message"],
                            [[e["unit"], e["rank"], e["host"], e["message"].replace("|", "\\|")]
                             for _, e in store.errors.iterrows()]))

    out += ["", "## Figures", ""]
    for path, caption in figures:
        out += [f"### {caption}", "", f"![{caption}]({os.path.basename(path)})", ""]
    return "\n".join(out) + "\n"


# ---- main --------------------------------------------------------------------------------------

def write_report(paths, out, prefix=False):
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

    figure(fig_pareto(rows, palette, out), "Accuracy vs model size and peak memory",
           "needs configs with both metrics and benchmarks")
    figure(fig_deltas(rows, palette, out), "Paired deltas vs baseline",
           "no config has a paired delta vs the baseline")
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
        compared[(a, b)] = compare_stats(pairs)
        figure(fig_compare(store.samples, a, b, compared[(a, b)], palette, out),
               f"{a} vs {b} per sample", "")

    csv_path = os.path.join(out, "summary.csv")
    rows.to_csv(csv_path, float_format="%.17g")
    md_path = os.path.join(out, "summary.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(summary_md(store, rows, compared, figures))
    return [md_path, csv_path] + [p for p, _ in figures], store.missing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stores", nargs="+", help="qsweep results stores (.h5)")
    parser.add_argument("--out", required=True, help="directory for summary.md, .csv and PNGs")
    parser.add_argument("--prefix", action="store_true",
                        help="name configs <sweep>:<config>, to keep same-named configs of "
                             "different sweeps apart")
    args = parser.parse_args(argv)
    try:
        written, missing = write_report(args.stores, args.out, args.prefix)
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
