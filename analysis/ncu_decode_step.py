#!/usr/bin/python3
"""The kernels of one greedy decode step, from an Nsight Compute CSV of a `qsweep bench` run at
batch 1 (tests/parity/run_ncu_on_gpu.sh writes it as ncu-decode.csv:
`ncu --csv --page raw --metrics gpu__time_duration.sum,dram__bytes_read.sum,...`).

    /usr/bin/python3 analysis/ncu_decode_step.py ncu-decode.csv [--step N]
        [--bytes-per-step B] [--step-ms T] [--csv OUT]

Each decode step ends with its greedy choice, qsweep's argmax_rows_kernel (fused decode) or
ATen's ArgMax reduce kernel (before it, or QSWEEP_FUSED_DECODE=0), so a step is the launches
after one such kernel up to and including the next. The steps of the most common length are the decode steps
(the prefill and the odd first steps differ in length); --step N picks the N-th of them,
counting from 0 (default: the middle one). Its launches are grouped by a short kernel name:
qsweep's own kernels by name, cuBLAS nvjet GEMMs by tile, splitK and grid (so each projection
has its own row), other ATen kernels by their first identifier after `at::`. Prints a header and
a Markdown table: per group calls, total µs, share of the step's kernel time, DRAM read GB/s,
MB read and written. The header also gives the median kernel-time sum over all decode steps.
ncu runs kernels one at a time and by default flushes the caches before each, so the sum is an
upper bound on the step as replayed from a CUDA graph. With --step-ms (the measured ms per
token) the header adds how much of the measured step the kernels account for; with
--bytes-per-step (the bytes a step must read, e.g. the weights) the bandwidth of the measured
step. --csv OUT writes the table, unrounded, as CSV. Exit code 1 when the CSV has no ncu header
row, lacks a column, or has no complete decode step.
"""
import argparse
import csv
import re
import statistics
import sys
from collections import Counter

TIME = "gpu__time_duration.sum"
READ = "dram__bytes_read.sum"
WRITE = "dram__bytes_write.sum"
NEEDED = ["ID", "Kernel Name", "Grid Size", TIME, READ, WRITE]
# ncu picks a unit per column and names it in the row under the header.
TIME_UNITS = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6,
              "s": 1e9, "second": 1e9}
COLUMNS = ["kernel", "calls", "us", "share_pct", "read_gb_s", "read_bytes", "write_bytes"]


class InputError(Exception):
    """The CSV cannot be used; the message names the file."""


def number(text):
    """A value as ncu writes it, thousands separators and all ("2,432")."""
    return float(text.replace(",", ""))


def read_launches(path):
    """[{id, name, grid, ns, read, write}] of every kernel launch in the file, in ID order."""
    with open(path, newline="", errors="replace") as f:
        lines = f.read().splitlines()
    # Before the header come ncu's ==PROF== lines and whatever the program printed.
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise InputError(f"{path}: no header row starting with \"ID\" (not the output of "
                         "ncu --csv --page raw?)")
    reader = csv.DictReader(lines[start:])
    missing = [c for c in NEEDED if c not in reader.fieldnames]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)}")
    units = next(reader, {})
    ns_per_unit = TIME_UNITS.get(units.get(TIME, ""))
    if ns_per_unit is None or units.get(READ) != "byte" or units.get(WRITE) != "byte":
        raise InputError(f"{path}: units {units.get(TIME)!r}, {units.get(READ)!r}, "
                         f"{units.get(WRITE)!r} not understood (rerun ncu with --print-units base)")
    launches = []
    for row in reader:
        if not row["ID"].isdigit():  # stray program output after the header
            continue
        try:
            launches.append({"id": int(row["ID"]), "name": row["Kernel Name"],
                             "grid": row["Grid Size"], "ns": number(row[TIME]) * ns_per_unit,
                             "read": number(row[READ]), "write": number(row[WRITE])})
        except ValueError:
            raise InputError(f"{path}: launch {row['ID']}: a metric is not a number") from None
    return sorted(launches, key=lambda launch: launch["id"])


STEP_END = re.compile(r"ArgMax|argmax_rows_kernel")


def decode_steps(launches, path):
    """The decode steps, each a list of launches ending with an argmax: the steps between two
    argmax launches whose length is the most common one."""
    ends = [i for i, launch in enumerate(launches) if STEP_END.search(launch["name"])]
    if len(ends) < 2:
        raise InputError(f"{path}: {len(ends)} argmax kernel(s), need two to bound a decode "
                         "step (not a greedy decode run, or cut short?)")
    steps = [launches[a + 1:b + 1] for a, b in zip(ends, ends[1:])]
    typical = Counter(len(s) for s in steps).most_common(1)[0][0]
    return [s for s in steps if len(s) == typical]


def short_name(name, grid):
    """A readable group name of a kernel; cuBLAS GEMMs keep tile and grid, which tell apart the
    projections of a layer (and the lm_head) that all run the same few nvjet kernels."""
    name = re.sub(r"^void ", "", name)
    if name.startswith("nvjet_"):
        fields = name.split("_")
        tile = fields[3] if len(fields) > 3 else name
        return f"cuBLAS {tile}{' splitK' if '_splitK' in name else ''} grid {grid}"
    own = re.match(r"qsweep::<unnamed>::(\w+)", name)
    if own:
        return own.group(1)
    aten = re.match(r"at::(?:<unnamed>::)?(\w+)", name)
    if aten:
        # One reduce_kernel is the ArgMax that ends the step, others are means: name the op.
        op = re.search(r"at::(\w+Ops)\b", name) if aten.group(1) == "reduce_kernel" else None
        return aten.group(1) + (f" {op.group(1)}" if op else "")
    # Anything else (cublasLt::splitKreduce_kernel, cuDNN, ...): its name without arguments.
    return re.split(r"[<(]", name, maxsplit=1)[0]


def group(step):
    """[row of COLUMNS] of one step, longest total time first."""
    total = sum(launch["ns"] for launch in step)
    rows = {}
    for launch in step:
        key = short_name(launch["name"], launch["grid"])
        row = rows.setdefault(key, {"kernel": key, "calls": 0, "ns": 0.0, "read_bytes": 0.0,
                                    "write_bytes": 0.0})
        row["calls"] += 1
        row["ns"] += launch["ns"]
        row["read_bytes"] += launch["read"]
        row["write_bytes"] += launch["write"]
    for row in rows.values():
        row["us"] = row["ns"] / 1e3
        row["share_pct"] = 100 * row["ns"] / total if total else 0.0
        row["read_gb_s"] = row["read_bytes"] / row["ns"] if row["ns"] else 0.0  # bytes/ns = GB/s
    return sorted(rows.values(), key=lambda r: -r["ns"])


def header(steps, index, bytes_per_step, step_ms):
    """The lines above the table: which step, its kernel-time sum, and how it compares."""
    step = steps[index]
    sums_us = [sum(launch["ns"] for launch in s) / 1e3 for s in steps]
    step_us, median_us = sums_us[index], statistics.median(sums_us)
    read = sum(launch["read"] for launch in step)
    lines = [f"Decode step {index} of the {len(steps)} steps of {len(step)} launches (IDs "
             f"{step[0]['id']}-{step[-1]['id']}): kernel time {step_us:.1f} µs (median over the "
             f"{len(steps)} steps {median_us:.1f} µs), DRAM read {read / 1e6:.1f} MB. ncu "
             "serializes the kernels and by default flushes the caches before each, so this sum "
             "is an upper bound on the step replayed from a CUDA graph."]
    if step_ms:
        lines.append(f"Measured step {step_ms:g} ms: the kernels account for "
                     f"{100 * step_us / (1e3 * step_ms):.1f} % of it.")
    if bytes_per_step:
        line = (f"Bytes per step {bytes_per_step / 1e6:.1f} MB (ncu read "
                f"{100 * read / bytes_per_step:.1f} % of it)")
        if step_ms:
            line += f": {bytes_per_step / (step_ms * 1e6):.0f} GB/s over the measured step"
        lines.append(line + f", {bytes_per_step / (step_us * 1e3):.0f} GB/s over the kernel time.")
    return lines


def markdown(rows):
    """The table as Markdown, rounded for reading."""
    out = ["| kernel | calls | µs | share | DRAM read GB/s | MB read | MB written |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['kernel']} | {r['calls']} | {r['us']:.1f} | {r['share_pct']:.1f} % | "
                   f"{r['read_gb_s']:.0f} | {r['read_bytes'] / 1e6:.3f} | "
                   f"{r['write_bytes'] / 1e6:.3f} |")
    return out


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_file", metavar="NCU_CSV")
    parser.add_argument("--step", type=int, help="which decode step, from 0 (default: middle)")
    parser.add_argument("--bytes-per-step", type=float, help="bytes a decode step must read")
    parser.add_argument("--step-ms", type=float, help="measured ms per decode step")
    parser.add_argument("--csv", metavar="OUT", help="also write the table to OUT as CSV")
    args = parser.parse_args(argv)
    try:
        steps = decode_steps(read_launches(args.csv_file), args.csv_file)
    except (InputError, OSError) as e:
        print(f"ncu_decode_step.py: {e}", file=sys.stderr)
        return 1
    index = len(steps) // 2 if args.step is None else args.step
    if not 0 <= index < len(steps):
        print(f"ncu_decode_step.py: {args.csv_file}: --step {index}, but there are "
              f"{len(steps)} decode steps (0-{len(steps) - 1})", file=sys.stderr)
        return 1
    rows = group(steps[index])
    lines = header(steps, index, args.bytes_per_step, args.step_ms) + [""] + markdown(rows)
    print("\n".join(lines))
    if args.csv:
        write_csv(rows, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
