#!/usr/bin/python3
"""Two runs of the kernel benchmark side by side: `qsweep_bench_kernels` JSON files A and B (the
two sides of tests/parity/run_ab_on_gpu.sh with KERNELS=1, or two sessions' files in docs/data).

    /usr/bin/python3 analysis/kernel_ab.py A.json B.json [--kernel SUBSTRING] [--rows M ...]

A row is one kernel at one shape and batch: weight kernels by (out, in, M), dequantize rows by
(out, in), attention by (context, head_dim, M). Prints each run's device and copy bandwidth (two
machines' figures differ by a few percent even for unchanged kernels), then a Markdown table of
the rows both runs measured: median µs of A and B and B / A, A's row order. Rows only one run has
are counted below the table. Exit code 1 when a file is not a kernel-benchmark JSON.
"""
import argparse
import json
import sys


def row_key(row):
    if "context" in row:
        return (row["kernel"], row["context"], row["head_dim"], row.get("M"))
    return (row["kernel"], row["out"], row["in"], row.get("M"))


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        rows = doc["results"]
        return doc, {row_key(r): r["median_us"] for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"kernel_ab: {path} is not a kernel-benchmark JSON ({type(e).__name__}: {e}); "
                 "expected the file qsweep_bench_kernels writes, with a 'results' list")


def table(a, b, kernel, rows):
    lines = ["| kernel | shape | M | A µs | B µs | B / A |", "|---|---|---:|---:|---:|---:|"]
    for key, a_us in a.items():
        name, c1, c2, m = key
        if kernel and kernel not in name or rows and m not in rows or key not in b:
            continue
        b_us = b[key]
        lines.append(f"| {name} | {c1} x {c2} | {'-' if m is None else m} | {a_us:.2f} | "
                     f"{b_us:.2f} | {b_us / a_us:.3f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--kernel", default="", help="only kernels whose name contains this")
    parser.add_argument("--rows", type=int, nargs="*", default=[], help="only these batch rows M")
    args = parser.parse_args(argv)
    (doc_a, a), (doc_b, b) = load(args.a), load(args.b)
    for side, doc in (("A", doc_a), ("B", doc_b)):
        print(f"{side}: {doc.get('device', '?')}, {doc.get('date', '?')}, copy bandwidth "
              f"{doc.get('copy_bandwidth_GBps', float('nan')):.0f} GB/s")
    print("\n".join(table(a, b, args.kernel, set(args.rows))))
    print(f"rows only in A: {len(a.keys() - b.keys())}, only in B: {len(b.keys() - a.keys())}")


if __name__ == "__main__":
    main()
