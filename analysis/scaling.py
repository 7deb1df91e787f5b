#!/usr/bin/python3
"""The scaling table of one or more qsweep stores: per run of the sweep (each /timing/<NNN>
segment, docs/results-schema.md) its ranks, wall time, efficiency, speed-up and rank 0's store
writes, and per rank its busy time by unit kind and its idle time.

    /usr/bin/python3 analysis/scaling.py r1.h5 r2.h5 r4.h5 r8.h5 [--out DIR]

Prints both tables as Markdown; with --out, also writes DIR/scaling.md, DIR/scaling.csv (one row
per segment) and DIR/scaling_ranks.csv (one row per rank of each segment). The speed-up of a
segment is the wall time of a finished 1-rank run among the stores with the same sweep settings
(results fingerprint) and as many units, divided by its own. A store whose sweep ran in several
segments on one number of ranks (stopped and resumed) gets a row "all" adding them up, which
counts as a run for the speed-up. Exit code 1 when a store cannot be read or
no store holds a segment.
"""
import argparse
import os
import sys

import h5py
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsweep_store import attrs, table  # noqa: E402

SEGMENT_COLUMNS = ["store", "segment", "ended", "ranks", "units", "wall_s", "busy_s",
                   "efficiency", "speedup", "store_writes", "store_write_s", "record_s",
                   "reloads", "quantized_twice"]
RANK_COLUMNS = ["store", "segment", "rank", "host", "units", "startup_s", "prepare_s",
                "sanity_s", "coqa_s", "bench_s", "busy_s", "wait_s", "end_idle_s", "busy_pct",
                "unaccounted_s", "preparations"]


def read_segments(path):
    """([segment row], [rank row]) of one store; ValueError when it has no /timing."""
    label = path
    with h5py.File(path, "r") as f:
        if "timing" not in f:
            raise ValueError(f"{path}: no /timing (written by a qsweep from before it, or no run "
                             "of it has ended yet)")
        fingerprint = f["provenance"].attrs.get("results_fingerprint", "")
        segments, ranks = [], []
        for name in sorted(f["timing"], key=lambda n: (len(n), n)):
            g = f["timing"][name]
            a = attrs(g)
            per_rank = table(g["rank_times"])
            prep = table(g["preparations"])
            quantized = prep.groupby("config")["quantized"].sum() if len(prep) else pd.Series()
            segments.append({
                "store": label, "segment": name, "ended": a["ended"], "ranks": a["ranks"],
                "units": a["units"], "wall_s": a["wall_seconds"], "busy_s": a["busy_seconds"],
                "efficiency": a["efficiency"], "store_writes": a["store_writes"],
                "store_write_s": a["store_write_seconds"], "record_s": a["record_seconds"],
                # A config's model loaded again on a rank that had it before.
                "reloads": int((prep["count"] - 1).clip(lower=0).sum()) if len(prep) else 0,
                "quantized_twice": ", ".join(sorted(quantized[quantized > 1].index)),
                "fingerprint": fingerprint})
            for _, r in per_rank.iterrows():
                parts = (r["startup_seconds"] + r["busy_seconds"] + r["wait_seconds"]
                         + r["end_idle_seconds"])
                ranks.append({
                    "store": label, "segment": name, "rank": int(r["rank"]), "host": r["host"],
                    "units": int(r["units"]), "startup_s": r["startup_seconds"],
                    "prepare_s": r["busy_prepare_seconds"], "sanity_s": r["busy_sanity_seconds"],
                    "coqa_s": r["busy_coqa_seconds"], "bench_s": r["busy_bench_seconds"],
                    "busy_s": r["busy_seconds"], "wait_s": r["wait_seconds"],
                    "end_idle_s": r["end_idle_seconds"],
                    "busy_pct": 100 * r["busy_seconds"] / a["wall_seconds"] if a["wall_seconds"] else 0,
                    "unaccounted_s": a["wall_seconds"] - parts,
                    "preparations": int(r["preparations"])})
    return segments, ranks


def with_totals(segments):
    """The segments, and for each store run in several segments on one number of ranks (a run
    stopped and resumed) a row "all" that adds them up: its wall time is what the whole sweep
    took, less the time between the segments."""
    out = list(segments)
    by_store = {}
    for seg in segments:
        by_store.setdefault(seg["store"], []).append(seg)
    for store, segs in by_store.items():
        if len(segs) < 2 or len({s["ranks"] for s in segs}) != 1:
            continue
        total = {"store": store, "segment": "all", "ended": segs[-1]["ended"],
                 "ranks": segs[0]["ranks"], "fingerprint": segs[0]["fingerprint"],
                 "reloads": sum(s["reloads"] for s in segs),
                 "quantized_twice": ", ".join(sorted({c for s in segs
                                                      for c in s["quantized_twice"].split(", ") if c}))}
        for key in ("units", "wall_s", "busy_s", "store_writes", "store_write_s", "record_s"):
            total[key] = sum(s[key] for s in segs)
        total["efficiency"] = (total["busy_s"] / (total["ranks"] * total["wall_s"])
                               if total["wall_s"] else 0)
        out.append(total)
    return out


def with_speedup(segments):
    """Each segment's speed-up over a finished 1-rank run of the same settings that ran as many
    units (a resumed run that found little left to do is no yardstick), if there is one."""
    df = pd.DataFrame(segments)
    one = df[(df["ranks"] == 1) & (df["ended"] == "finished") & (df["units"] > 0)]
    base = one.groupby(["fingerprint", "units"])["wall_s"].min()
    df["speedup"] = [base[(fp, n)] / w if (fp, n) in base.index and w > 0 else float("nan")
                     for fp, n, w in zip(df["fingerprint"], df["units"], df["wall_s"])]
    return df.sort_values(["ranks", "store", "segment"], kind="stable")[SEGMENT_COLUMNS]


def markdown(df, floats):
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            if c in floats:
                cells.append("" if pd.isna(v) else floats[c].format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SEGMENT_FORMATS = {"wall_s": "{:.1f}", "busy_s": "{:.1f}", "efficiency": "{:.1%}",
                   "speedup": "{:.2f}", "store_write_s": "{:.2f}", "record_s": "{:.2f}"}
RANK_FORMATS = {c: "{:.1f}" for c in RANK_COLUMNS if c.endswith("_s")}
RANK_FORMATS.update({"busy_pct": "{:.1f}", "unaccounted_s": "{:.2f}"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+")
    parser.add_argument("--out", help="directory for scaling.md, scaling.csv, scaling_ranks.csv")
    args = parser.parse_args(argv)
    segments, ranks, failed = [], [], False
    for path in args.stores:
        try:
            s, r = read_segments(path)
        except (OSError, KeyError, ValueError) as e:
            print(f"scaling.py: {path}: {e}" if not str(e).startswith(path) else f"scaling.py: {e}",
                  file=sys.stderr)
            failed = True
            continue
        segments += s
        ranks += r
    if not segments:
        print("scaling.py: no timing segment in the stores given", file=sys.stderr)
        return 1
    seg = with_speedup(with_totals(segments))
    per_rank = pd.DataFrame(ranks)[RANK_COLUMNS]
    text = ("## Runs\n\n" + markdown(seg, SEGMENT_FORMATS) + "\n\n## Ranks\n\n"
            + markdown(per_rank, RANK_FORMATS) + "\n")
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "scaling.md"), "w") as f:
            f.write(text)
        seg.to_csv(os.path.join(args.out, "scaling.csv"), index=False)
        per_rank.to_csv(os.path.join(args.out, "scaling_ranks.csv"), index=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
