"""Reads qsweep results stores (docs/results-schema.md) into pandas DataFrames.

    import qsweep_store
    store = qsweep_store.load(["jobs/demo.h5"])
    store.samples.groupby("config")["f1"].mean()
    print("\\n".join(store.missing))

Several stores merge into one Store. Config names are kept as they are, unless `prefix=True`,
which renames every config to `<sweep name>:<config>` (":" cannot occur in either name; stores
that share a sweep name are told apart by their file names instead, see store_labels). After
that renaming, a config name found in two stores is one config only when both stores hold the
same sweep settings (the `results_fingerprint` provenance attribute) and the same config
preparation (its `fingerprint` attribute), and no unit was done in both: then its samples,
benchmark and sanity outputs are put together. Anything else is an error that says so: two runs
of the same config cannot be told apart afterwards, so they are never silently mixed.

A merged config's stored metrics each describe only part of its samples, so they are dropped and
recomputed here from all of them (`metrics_source` says "recomputed"; the bootstrap is this
module's, with the same method as qsweep's but not the same random draws).
"""
from dataclasses import dataclass, field
import os
import re

import h5py
import numpy as np
import pandas as pd

GOLD_SEPARATOR = "\x1f"
PREFIX_SEPARATOR = ":"
THROUGHPUT_PREFIX = "throughput_b"

# Table columns are the file's own (see `table`), so a field qsweep adds needs no change here.
# The benchmarks are reshaped into one long table instead, with these columns:
BENCH_COLUMNS = ["config", "measure", "batch_size", "repeat", "value", "unit"]

# Benchmark columns (docs/results-schema.md, /configs/<name>/bench) and the unit of each.
BENCH_UNITS = {
    "prefill_ms": "ms",
    "decode_ms_per_token": "ms/token",
    "throughput": "tokens/s",
    "power_w": "W",
    "bandwidth_gb_s": "GB/s",
    "prefill_tflop_s": "TFLOP/s",
    "energy_j_per_token": "J/token",
    "copy_bandwidth_gb_s": "GB/s",
    "matmul_tflop_s": "TFLOP/s",
}

# The benchmark's scalar attributes carried into the configs table (absent in older stores).
BENCH_ATTRIBUTES = ("device", "device_kind", "method", "sync", "warmup", "repeats", "bits_per_weight",
                    "throughput_prompt_tokens", "model_bytes", "peak_memory_bytes",
                    "decode_bytes_per_step", "prefill_flops",
                    "decode_fraction_of_copy_bandwidth", "prefill_fraction_of_matmul_rate")


@dataclass
class Store:
    """One or several stores as tables. Every table has a `config` column where rows belong to
    a config; `store` columns hold the file the row came from."""
    paths: list
    provenance: pd.DataFrame   # one row per file, indexed by path; every attribute a column
    configs: pd.DataFrame      # one row per config, indexed by name, in spec order per store
    samples: pd.DataFrame      # one row per evaluated CoQA sample; `golds` is a list
    metrics: pd.DataFrame      # one row per config with metrics; columns = the attributes
    bench: pd.DataFrame        # raw benchmark samples, long: config, measure, batch_size,
                               # repeat, value, unit
    units: pd.DataFrame        # /units of every file
    errors: pd.DataFrame       # /errors of every file
    sanity: pd.DataFrame       # config, prompt, output
    compare: list              # [(config, config)] pairs from the job files' `compare`
    missing: list = field(default_factory=list)  # human-readable: what is not in the store(s)


def table(group):
    """A group of equal-length 1-D columns as a DataFrame, strings decoded. Every column of the
    group is there, also in a table of no rows."""
    return pd.DataFrame({
        name: group[name].asstr()[:] if h5py.check_string_dtype(group[name].dtype)
        else group[name][:]
        for name in group.keys()
    })


def attrs(obj):
    """HDF5 attributes as plain Python values (h5py gives numpy scalars and str)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in obj.attrs.items()}


def parse_compare(spec_text):
    """The job file's `compare` list as (a, b) pairs. python3-yaml when installed; otherwise the
    flow form every example uses (`- [a, b]` lines under `compare:`)."""
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        spec = yaml.safe_load(spec_text) or {}
        return [tuple(str(x) for x in pair) for pair in spec.get("compare") or []]
    block = re.search(r"^compare:\s*\n((?:[ \t]+-.*\n?|[ \t]*#.*\n?)+)", spec_text, re.M)
    if not block:
        return []
    return [(a.strip(" '\""), b.strip(" '\""))
            for a, b in re.findall(r"-\s*\[\s*([^,\]]+),\s*([^\]]+?)\s*\]", block.group(1))]


def read_one(path):
    """Everything in one store file, config names as written."""
    with h5py.File(path, "r") as f:
        provenance = attrs(f["provenance"])
        if provenance.get("format") != "qsweep-results":
            raise ValueError(f"{path}: not a qsweep results store (provenance format is "
                             f"{provenance.get('format')!r}, expected 'qsweep-results')")
        configs, samples, metrics, bench, sanity = [], [], [], [], []
        for name, g in f["configs"].items():
            info = {"config": name, "store": path, "sweep": provenance.get("name", ""),
                    "results_fingerprint": provenance.get("results_fingerprint", ""),
                    **{k: attrs(g).get(k) for k in ("index", "fingerprint")},
                    **dict.fromkeys(BENCH_ATTRIBUTES), "perplexity": None,
                    "kl_vs_baseline": None, "quantize_seconds": None}
            if "samples" in g:
                samples.append(table(g["samples"]).assign(config=name))
            m = attrs(g["metrics"]) if "metrics" in g else {}
            if m:
                metrics.append({"config": name, "metrics_source": "store", **m})
            if "bench" in g:
                b = attrs(g["bench"])
                info.update({k: b.get(k) for k in BENCH_ATTRIBUTES})
                for column, values in g["bench"].items():
                    bench.append(bench_rows(name, column, values[:]))
            if "sanity" in g:
                s = g["sanity"]
                sanity.append(table(s).assign(config=name))
                info["perplexity"] = attrs(s).get("perplexity")
                info["kl_vs_baseline"] = attrs(s).get("kl_vs_baseline")
            if "prepare" in g:
                # The time of the quantizations actually run; loads from the cache cost none.
                p = table(g["prepare"])
                ran = p[p["source"] == "quantized"]
                info["quantize_seconds"] = float(ran["quantize_seconds"].sum()) if len(ran) else None
            configs.append(info)
        return {
            "provenance": provenance,
            "configs": pd.DataFrame(configs).sort_values("index", kind="stable"),
            "samples": concat(samples),
            "metrics": pd.DataFrame(metrics),
            "bench": concat(bench, BENCH_COLUMNS),
            "units": table(f["units"]).assign(store=path),
            "errors": table(f["errors"]).assign(store=path),
            "sanity": concat(sanity),
        }


def bench_rows(config, column, values):
    if column.startswith(THROUGHPUT_PREFIX):
        measure, batch = "throughput", int(column[len(THROUGHPUT_PREFIX):])
    else:
        measure, batch = column, None
    return pd.DataFrame({"config": config, "measure": measure,
                         "batch_size": pd.array([batch] * len(values), dtype="Int64"),
                         "repeat": np.arange(len(values)), "value": values,
                         "unit": BENCH_UNITS.get(measure, "")})


def concat(frames, columns=None):
    """The frames one below the other. Where all are empty, an empty frame with every column
    they have (the file's columns: a store with nothing done yet still lists them), or `columns`
    where there are no frames at all."""
    full = [f for f in frames if len(f)]
    if full:
        return pd.concat(full, ignore_index=True)
    named = list(dict.fromkeys(c for f in frames for c in f.columns)) or columns
    return pd.DataFrame(columns=named)


def rename_configs(part, prefix):
    """Prefix every config name in one file's tables with its sweep name."""
    name = lambda c: f"{prefix}{PREFIX_SEPARATOR}{c}"
    for key in ("configs", "samples", "metrics", "bench", "units", "errors", "sanity"):
        if "config" in part[key]:
            part[key]["config"] = part[key]["config"].map(name)
    if "key" in part["units"]:
        part["units"]["key"] = part["units"]["key"].map(name)
    for column in ("em_delta_baseline", "f1_delta_baseline"):
        if column in part["metrics"]:
            part["metrics"][column] = part["metrics"][column].map(
                lambda c: name(c) if isinstance(c, str) else c)
    part["compare"] = [(name(a), name(b)) for a, b in part["compare"]]
    part["provenance"]["baseline"] = name(part["provenance"].get("baseline", ""))


def check_mergeable(configs, units):
    """Raise unless every config found in several files may be merged (module docstring)."""
    for name, rows in configs.groupby("config", sort=False):
        if len(rows) < 2:
            continue
        files = ", ".join(rows["store"])
        for what in ("fingerprint", "results_fingerprint"):
            if rows[what].nunique() > 1:
                raise ValueError(
                    f"config '{name}' is in {files} with different {what}s: these are different "
                    "experiments; load them with prefix=True (report.py --prefix) to keep both")
        # A prepare unit leaves a cached checkpoint, not results: done in both files is fine.
        done = units[(units["config"] == name) & (units["status"] == "done") &
                     (units["kind"] != "prepare")]
        twice = done[done.duplicated("key", keep=False)]["key"].unique()
        if len(twice):
            listed = ", ".join(twice[:3]) + (f" and {len(twice) - 3} more" if len(twice) > 3 else "")
            raise ValueError(f"config '{name}': units {listed} were done in more than "
                             f"one of {files}; results of two runs of a unit cannot be merged")


def unit_view(units):
    """One row per unit key across files: done if done anywhere, else failed if failed
    anywhere, else todo. Keeps the order of first appearance."""
    if units.empty:
        return units
    rank = {"done": 0, "failed": 1, "todo": 2}
    best = units.assign(_r=units["status"].map(rank).fillna(3))
    order = {k: i for i, k in enumerate(dict.fromkeys(units["key"]))}
    best = best.sort_values("_r", kind="stable").drop_duplicates("key")
    return best.sort_values("key", key=lambda s: s.map(order)).drop(columns="_r")


def pending_units(view, errors, name, kind):
    """'2 of 5 CoQA units not done (key status; ...)' for one config and kind, or None."""
    mine = view[(view["config"] == name) & (view["kind"] == kind)] if len(view) else view
    pending = mine[mine["status"] != "done"] if len(mine) else mine
    if len(pending) == 0:
        return None
    listed = []
    for key, status in zip(pending["key"][:5], pending["status"][:5]):
        last = errors[errors["unit"] == key]["message"] if len(errors) else []
        listed.append(f"{key} {status}" + (f": {last.iloc[-1]}" if len(last) else ""))
    more = f"; and {len(pending) - 5} more" if len(pending) > 5 else ""
    label = {"coqa": "CoQA", "bench": "benchmark"}.get(kind, kind)
    return f"{len(pending)} of {len(mine)} {label} units not done ({'; '.join(listed)}{more})"


def find_missing(configs, metrics, units, errors, compare):
    """What a reader of the results should know is not there, one sentence each."""
    missing = []
    view = unit_view(units)
    for name in configs.index:
        coqa = pending_units(view, errors, name, "coqa")
        if coqa:
            missing.append(f"config {name}: no EM/F1 yet, {coqa}")
        elif name not in metrics.index:
            missing.append(f"config {name}: no EM/F1 metrics")
        elif pd.isna(metrics.loc[name].get("em_delta", np.nan)):
            missing.append(f"config {name}: no paired delta vs the baseline (computed once the "
                           "baseline's CoQA units are done)")
        bench = pending_units(view, errors, name, "bench")
        if bench:
            missing.append(f"config {name}: no benchmarks yet, {bench}")
        sanity = pending_units(view, errors, name, "sanity")
        if sanity:
            missing.append(f"config {name}: no sanity outputs yet, {sanity}")
    for a, b in compare:
        for c in (a, b):
            if c not in configs.index:
                missing.append(f"compare [{a}, {b}]: config {c} is not in the store")
    return missing


def store_labels(paths, parts):
    """What prefix=True puts before config names: each store's sweep name, or, where two stores
    share a sweep name, the file name without .h5 (and the whole path where those collide too)."""
    names = [p["provenance"].get("name", "") for p in parts]
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    labels = [n if n and names.count(n) == 1 else s for n, s in zip(names, stems)]
    return [label if labels.count(label) == 1 else path for label, path in zip(labels, paths)]


def load(paths, prefix=False):
    """Read one or several stores into one Store (merging rules in the module docstring)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [str(p) for p in paths]
    parts = [read_one(path) for path in paths]
    for part in parts:
        part["compare"] = parse_compare(part["provenance"].get("spec_text", ""))
    if prefix:
        for part, label in zip(parts, store_labels(paths, parts)):
            rename_configs(part, label)

    all_configs = concat([p["configs"] for p in parts])
    units = concat([p["units"] for p in parts])
    check_mergeable(all_configs, units)

    # Bench, sanity and perplexity come from whichever file has them (at most one: a bench unit
    # done twice is refused above).
    configs = all_configs.groupby("config", sort=False).agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else None)
    # A config's files are those that hold results of it (done units); a file that only lists
    # it as planned adds nothing.
    done = units[units["status"] == "done"] if len(units) else units
    holders = {c: list(dict.fromkeys(done.loc[done["config"] == c, "store"])) if len(done) else []
               for c in configs.index}
    configs["store"] = [", ".join(holders[c]) or s for c, s in
                        zip(configs.index, configs["store"])]
    configs["baseline"] = [
        next(p["provenance"].get("baseline") for p in parts if c in set(p["configs"]["config"]))
        for c in configs.index]

    samples = concat([p["samples"] for p in parts])
    if len(samples):
        samples["golds"] = samples["golds"].str.split(GOLD_SEPARATOR)
    metrics = concat([p["metrics"] for p in parts], ["config"]).set_index("config")
    merged = [c for c in configs.index if len(holders[c]) > 1]
    for name in merged:
        if name in metrics.index:
            metrics = metrics.drop(index=name)
        row = recompute_metrics(samples, name, configs.loc[name, "baseline"], configs.index)
        if row:
            metrics = pd.concat([metrics, pd.DataFrame([row]).set_index("config")])

    # Spec order; the columns are the /metrics attributes found in the files.
    metrics = metrics.reindex(index=[c for c in configs.index if c in metrics.index])

    errors = concat([p["errors"] for p in parts])
    compare = list(dict.fromkeys(pair for p in parts for pair in p["compare"]))
    store = Store(
        paths=paths,
        provenance=pd.DataFrame([p["provenance"] for p in parts], index=paths),
        configs=configs,
        samples=samples,
        metrics=metrics,
        bench=concat([p["bench"] for p in parts], BENCH_COLUMNS),
        units=units,
        errors=errors,
        sanity=concat([p["sanity"] for p in parts]),
        compare=compare,
    )
    store.missing = find_missing(configs, metrics, units, errors, compare)
    if merged:
        store.missing.append(f"configs {', '.join(merged)}: merged from several stores; their "
                             "metrics are recomputed here, not qsweep's")
    return store


# Statistics, as src/stats.cpp computes them, for metrics qsweep did not store: merged configs
# and the `compare` pairs.

def bootstrap_means(x, resamples, seed):
    rng = np.random.default_rng(seed)
    return x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)


def bca_interval95(x, means):
    """BCa 95% interval of the mean from its bootstrap distribution (Efron; as qsweep)."""
    from scipy.stats import norm
    if np.all(x == x[0]):
        return x[0], x[0]
    theta = x.mean()
    share = ((means < theta).sum() + (means <= theta).sum()) / (2 * len(means))
    if share <= 0 or share >= 1:
        return tuple(np.percentile(means, [2.5, 97.5]))
    z0 = norm.ppf(share)
    jack = (x.sum() - x) / (len(x) - 1)
    d = jack.mean() - jack
    a = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5)
    z = norm.ppf([0.025, 0.975])
    adjusted = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    return tuple(np.percentile(means, 100 * adjusted))


def mean_summary(x, resamples=10000, seed=1234):
    """mean, n, stderr, t and BCa 95% intervals: the /metrics attributes of one score."""
    from scipy.stats import t
    x = np.asarray(x, dtype=float)
    n = len(x)
    stderr = x.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    half = t.ppf(0.975, n - 1) * stderr if n > 1 else np.nan
    lo, hi = bca_interval95(x, bootstrap_means(x, resamples, seed))
    return {"": x.mean(), "_n": n, "_stderr": stderr, "_t95_lo": x.mean() - half,
            "_t95_hi": x.mean() + half, "_bca95_lo": lo, "_bca95_hi": hi}


def paired_delta(x, base, resamples=10000, seed=1234):
    """Mean of x - base over paired samples, BCa 95% interval and two-sided bootstrap p."""
    d = np.asarray(x, dtype=float) - np.asarray(base, dtype=float)
    means = bootstrap_means(d, resamples, seed)
    lo, hi = bca_interval95(d, means)
    extreme = (np.abs(means - d.mean()) >= abs(d.mean())).sum()
    return {"": d.mean(), "_n": len(d), "_bca95_lo": lo, "_bca95_hi": hi,
            "_p": (1 + extreme) / (1 + resamples)}


def paired_scores(samples, a, b):
    """Samples of configs a and b joined on (id, turn), columns `<score>_a`, `<score>_b`."""
    keys = ["id", "turn"]
    cols = keys + ["em", "f1", "prediction"]
    return samples[samples["config"] == a][cols].merge(
        samples[samples["config"] == b][cols], on=keys, suffixes=("_a", "_b"))


def recompute_metrics(samples, name, baseline, known):
    """A /metrics row for a config from its samples; None when it has none."""
    if samples.empty or not (samples["config"] == name).any():
        return None
    mine = samples[samples["config"] == name]
    row = {"config": name, "metrics_source": "recomputed"}
    for score in ("em", "f1"):
        row.update({score + k: v for k, v in mean_summary(mine[score].to_numpy()).items()})
    if baseline in known:
        pairs = paired_scores(samples, name, baseline)
        if len(pairs) == len(mine) and len(pairs):
            for score in ("em", "f1"):
                delta = paired_delta(pairs[score + "_a"].to_numpy(), pairs[score + "_b"].to_numpy())
                row.update({f"{score}_delta{k}": v for k, v in delta.items()})
                row[f"{score}_delta_baseline"] = baseline
    return row
