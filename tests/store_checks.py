"""Checks on qsweep results stores for the end-to-end tests (tests/slurm/test_slurm.sh,
tests/mpi/test_sweep_mpi.sh), reading them with h5py only, as docs/results-schema.md describes:
/units holds one row per planned unit (`key`, `status` "todo"/"done"/"failed", `rank`, `host`,
`seconds`, `finished_at`), /configs/<name>/samples one row per sample, /configs/<name>/metrics
the metrics as attributes, /errors one row per failed unit run.

  store_checks.py progress STORE               print "DONE TOTAL"; exit 1 if STORE is unreadable
  store_checks.py wait-partial STORE MIN SECONDS PID
                                               poll STORE until at least MIN units are done but
                                               not all; fail if PID ends or SECONDS pass first
  store_checks.py partial STORE SNAPSHOT.json  at least one unit done but not all; save the units
  store_checks.py snapshot STORE SNAPSHOT.json save the units and errors as they are
  store_checks.py complete STORE [SNAPSHOT.json]
                                               every unit done once, no sample twice, metrics for
                                               every evaluated config; with a snapshot, the units
                                               done in it were not run again, its errors are kept
  store_checks.py unchanged STORE SNAPSHOT.json
                                               no unit was run and no error added since the snapshot
  store_checks.py same-results STORE_A STORE_B the same units planned and, per config, the same
                                               samples and exactly the same metrics
  store_checks.py spread STORE MIN_RANKS      the done units ran on at least MIN_RANKS ranks
  store_checks.py failed STORE CONFIG TEXT...  CONFIG's units all failed, each with an error row
                                               whose message contains every TEXT; every other
                                               config complete with metrics
  store_checks.py prepared STORE CONFIG N_QUANTIZED
                                               /configs/CONFIG/prepare holds exactly N_QUANTIZED
                                               rows with source "quantized" (the calibrated
                                               method ran) and the rest "cache", all naming one
                                               cache entry; print "QUANTIZED CACHED"
  store_checks.py derived STORE BASELINE RESAMPLES
                                               every config's metrics derived with BASELINE and
                                               RESAMPLES, deltas against BASELINE, KL measured
                                               against it (none for the baseline itself)
  store_checks.py timing STORE SEGMENTS RANKS [SNAPSHOT.json]
                                               /timing holds SEGMENTS runs, the last on RANKS
                                               ranks; in each finished one, per rank startup +
                                               busy + wait + end idle = wall within 0.25 s + 1 %,
                                               busy and units sum to the run's, efficiency =
                                               busy / (ranks x wall); the first run's units and
                                               preparations per rank match /units and the
                                               prepare tables; no calibrated config quantized
                                               twice; with a snapshot, the runs in it are
                                               unchanged (then it is rewritten)
  store_checks.py skipped STORE UNIT         UNIT (e.g. cfg/sanity) failed once on its own and
                                               other units of its config were skipped naming it
Exit code 0 when the check holds; the reason otherwise.
"""
import json
import math
import os
import sys
import time
from collections import Counter

import h5py

# What a sample's result is: equal for the same sample however the units were spread over ranks.
SAMPLE_COLUMNS = ("unit", "id", "turn", "prompt_sha256", "prediction", "em", "f1",
                  "generated_tokens", "stop_reason")


def column(group, name):
    data = group[name]
    return list(data.asstr()[:]) if h5py.check_string_dtype(data.dtype) else data[:].tolist()


def units(f):
    """Unit key -> [status, rank, host, finished_at, seconds], failing on a key listed twice."""
    g = f["units"]
    keys = column(g, "key")
    twice = [k for k, n in Counter(keys).items() if n > 1]
    if twice:
        sys.exit(f"{f.filename}: units listed more than once: {twice}")
    rows = zip(keys, column(g, "status"), column(g, "rank"), column(g, "host"),
               column(g, "finished_at"), column(g, "seconds"))
    return {k: [status, int(rank), host, at, float(s)] for k, status, rank, host, at, s in rows}


def errors(f):
    """One [config, unit, rank, host, message] per failed unit run."""
    if "errors" not in f:
        return []
    g = f["errors"]
    return [list(r) for r in zip(column(g, "config"), column(g, "unit"), column(g, "rank"),
                                 column(g, "host"), column(g, "message"))]


def done_keys(table):
    return sorted(k for k, row in table.items() if row[0] == "done")


def samples(config):
    """The config's samples as sorted tuples of SAMPLE_COLUMNS, failing on an (id, turn) twice."""
    if "samples" not in config:
        return []
    g = config["samples"]
    rows = sorted(zip(*(column(g, c) for c in SAMPLE_COLUMNS)))
    twice = [r for r, n in Counter((r[1], r[2]) for r in rows).items() if n > 1]
    if twice:
        sys.exit(f"config {config.name}: samples (id, turn) twice: {twice[:5]}")
    return rows


def metrics(config):
    return dict(config["metrics"].attrs) if "metrics" in config else {}


def same_value(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def save(path, table, errs):
    with open(path, "w") as out:
        json.dump({"units": table, "errors": errs}, out)


def load(path):
    with open(path) as src:
        return json.load(src)


def progress(path):
    with h5py.File(path, "r") as f:
        table = units(f)
    print(len(done_keys(table)), len(table))


def wait_partial(path, least, seconds, pid):
    deadline = time.monotonic() + float(seconds)
    done, total = 0, 0
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"{path}: the sweep (PID {pid}) ended with {done} of {total} units done")
        try:
            with h5py.File(path, "r") as f:
                table = units(f)
            done, total = len(done_keys(table)), len(table)
        except (OSError, KeyError):
            pass  # not written yet
        if total and done == total:
            sys.exit(f"{path}: all {total} units done before the check; make the sweep longer")
        if done >= int(least):
            print(f"{path}: {done} of {total} units done")
            return
        time.sleep(0.05)
    sys.exit(f"{path}: {done} of {total} units done after {seconds} s, waited for {least}")


def partial(path, snapshot):
    with h5py.File(path, "r") as f:
        table, errs = units(f), errors(f)
    done = done_keys(table)
    if not 0 < len(done) < len(table):
        sys.exit(f"{path}: expected some but not all units done, got {len(done)} of {len(table)}")
    save(snapshot, table, errs)
    print(f"{path}: partial, {len(done)} of {len(table)} units done")


def snapshot(path, out):
    with h5py.File(path, "r") as f:
        table, errs = units(f), errors(f)
    save(out, table, errs)
    print(f"{path}: {len(done_keys(table))} of {len(table)} units done, {len(errs)} errors")


def complete(path, snapshot_path=None):
    with h5py.File(path, "r") as f:
        table, errs = units(f), errors(f)
        not_done = {k: row[0] for k, row in table.items() if row[0] != "done"}
        if not table or not_done:
            sys.exit(f"{path}: units not done: {not_done or 'no units at all'}")
        count = 0
        for name, config in f["configs"].items():
            rows = samples(config)
            if rows and not {"em", "f1"} <= metrics(config).keys():
                sys.exit(f"{path}: config {name} has samples but no metrics")
            count += len(rows)
        if count == 0:
            sys.exit(f"{path}: no samples in any config")
    kept = ""
    if snapshot_path:
        before = load(snapshot_path)
        # A unit done before keeps its rank, host, finish time and duration: it was skipped.
        done_before = {k: row for k, row in before["units"].items() if row[0] == "done"}
        rerun = [k for k, row in done_before.items() if table[k] != row]
        if rerun:
            sys.exit(f"{path}: units done before the resume ran again: {rerun}")
        lost = [e for e in before["errors"] if e not in errs]
        if lost:
            sys.exit(f"{path}: error rows of earlier runs were dropped: {lost}")
        kept = f", {len(done_before)} units kept from before the resume"
    print(f"{path}: complete, {len(table)} units done once, {count} samples, "
          f"{len(errs)} errors{kept}")


def unchanged(path, snapshot_path):
    before = load(snapshot_path)
    with h5py.File(path, "r") as f:
        table, errs = units(f), errors(f)
    changed = sorted(k for k in table.keys() | before["units"].keys()
                     if table.get(k) != before["units"].get(k))
    if changed:
        sys.exit(f"{path}: units changed since the snapshot: {changed}")
    if errs != before["errors"]:
        sys.exit(f"{path}: {len(errs)} error rows, {len(before['errors'])} in the snapshot")
    print(f"{path}: unchanged, no unit run again ({len(table)} units, {len(errs)} errors)")


def compare_config(name, ca, cb):
    """Why config `name` differs between two stores, or None."""
    sa, sb = samples(ca), samples(cb)
    if not sa:
        return "no samples"
    if sa != sb:
        diff = [(x, y) for x, y in zip(sa, sb) if x != y]
        if len(sa) != len(sb):
            return f"{len(sa)} vs {len(sb)} samples"
        first = diff[0]
        return (f"{len(diff)} of {len(sa)} samples differ, e.g. {first[0][1]} turn {first[0][2]}: "
                + " vs ".join(repr(dict(zip(SAMPLE_COLUMNS[4:7], r[4:7]))) for r in first))
    ma, mb = metrics(ca), metrics(cb)
    needed = {"em", "f1", "em_stderr", "f1_stderr", "em_bca95_lo", "em_bca95_hi",
              "f1_t95_lo", "f1_bca95_hi"}
    if not needed <= ma.keys():
        return f"metrics lack {sorted(needed - ma.keys())}"
    differ = sorted(k for k in ma.keys() | mb.keys() if not same_value(ma.get(k), mb.get(k)))
    if differ:
        return "metrics differ: " + ", ".join(f"{k} {ma.get(k)!r} vs {mb.get(k)!r}" for k in differ)
    return None


def prepared(path, config_name, quantized):
    with h5py.File(path, "r") as f:
        group = f[f"configs/{config_name}/prepare"]
        sources = list(column(group, "source"))
        entries = set(column(group, "cache_entry"))
        seconds = list(column(group, "quantize_seconds"))
    n = sources.count("quantized")
    if n != int(quantized) or set(sources) - {"quantized", "cache"}:
        sys.exit(f"{path}: {config_name} was prepared {sources}, expected {quantized} 'quantized'")
    if len(entries) != 1 or not all(entries):
        sys.exit(f"{path}: {config_name}'s preparations name cache entries {entries}")
    if any(s > 0 for s, src in zip(seconds, sources) if src == "cache"):
        sys.exit(f"{path}: a preparation from the cache spent time quantizing: {seconds}")
    print(n, len(sources) - n)


def same_results(path_a, path_b):
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        if sorted(units(a)) != sorted(units(b)):
            sys.exit(f"{path_a} and {path_b} plan different units")
        if sorted(a["configs"]) != sorted(b["configs"]):
            sys.exit(f"{path_a} and {path_b} hold different configs")
        lines, problems = [], []
        for name in a["configs"]:
            problem = compare_config(name, a["configs"][name], b["configs"][name])
            if problem:
                problems.append(f"  {name}: {problem}")
            else:
                ma = metrics(a["configs"][name])
                deltas = (f"deltas vs {ma['em_delta_baseline']}" if "em_delta" in ma
                          else "no deltas")
                lines.append(f"  {name}: {len(samples(a['configs'][name]))} samples identical, "
                             f"{len(ma)} metrics attributes equal ({deltas}; "
                             f"em {ma['em']:.3f}, f1 {ma['f1']:.3f})")
    if problems:
        sys.exit(f"{path_a} and {path_b} differ:\n" + "\n".join(problems + lines))
    print(f"{path_a} and {path_b} hold the same results:")
    print("\n".join(lines))


def spread(path, least):
    with h5py.File(path, "r") as f:
        table = units(f)
    per_rank = Counter(row[1] for row in table.values() if row[0] == "done")
    if len(per_rank) < int(least):
        sys.exit(f"{path}: units ran on {len(per_rank)} rank(s), expected at least {least}")
    print(f"{path}: units done per rank: "
          + ", ".join(f"rank {r}: {n}" for r, n in sorted(per_rank.items())))


def failed(path, config_name, *texts):
    with h5py.File(path, "r") as f:
        table, errs = units(f), errors(f)
        mine = {k: row for k, row in table.items() if k.startswith(config_name + "/")}
        if not mine:
            sys.exit(f"{path}: no units of config {config_name}")
        not_failed = {k: row[0] for k, row in mine.items() if row[0] != "failed"}
        if not_failed:
            sys.exit(f"{path}: units of {config_name} not failed: {not_failed}")
        for key in mine:
            rows = [e for e in errs if e[1] == key]
            if not rows or rows[0][0] != config_name:
                sys.exit(f"{path}: no error row for {key} (config {config_name})")
            for e in rows:
                missing = [t for t in texts if t not in e[4]]
                if missing:
                    sys.exit(f"{path}: error of {key} does not name {missing}: {e[4]!r}")
        if metrics(f["configs"][config_name]):
            sys.exit(f"{path}: config {config_name} has metrics though its units failed")
        others = {k: row[0] for k, row in table.items()
                  if not k.startswith(config_name + "/") and row[0] != "done"}
        if others:
            sys.exit(f"{path}: units of other configs not done: {others}")
        complete_configs = []
        for name, config in f["configs"].items():
            if name == config_name:
                continue
            if not samples(config) or not {"em", "f1"} <= metrics(config).keys():
                sys.exit(f"{path}: config {name} has no samples or no metrics")
            complete_configs.append(name)
    print(f"{path}: {len(mine)} units of {config_name} failed, each with an error row naming "
          f"{list(texts)}; {', '.join(complete_configs)} complete with metrics")
    example = next(e for e in errs if e[0] == config_name)
    print(f"  e.g. {example[1]}: {example[4]}")


def derived(path, baseline, resamples):
    """Every derived table follows BASELINE and RESAMPLES: metrics say they were derived with
    them, comparisons are against BASELINE, and every config's KL was measured
    against BASELINE (the baseline itself has none)."""
    wanted = f"baseline={baseline} bootstrap_resamples={resamples} seed=1234"
    with h5py.File(path, "r") as f:
        for name, config in f["configs"].items():
            m = metrics(config)
            got = m.get("derived_from")
            if got != wanted:
                sys.exit(f"{path}: {name}'s metrics were derived with {got!r}, not {wanted!r}")
            # The baseline has deltas too, against itself.
            against = m.get("em_delta_baseline")
            if against != baseline:
                sys.exit(f"{path}: {name}'s deltas are against {against!r} (baseline {baseline})")
            sanity = dict(config["sanity"].attrs)
            if sanity.get("kl_baseline") != baseline:
                sys.exit(f"{path}: {name}'s KL was measured against {sanity.get('kl_baseline')!r}")
            if ("kl_vs_baseline" in sanity) == (name == baseline):
                sys.exit(f"{path}: {name} {'has' if name == baseline else 'lacks'} a KL")
    print(f"{path}: metrics, deltas and KL of every config follow baseline {baseline} and "
          f"{resamples} resamples")


def skipped(path, first_unit):
    """FIRST_UNIT failed on its own (an error that is not a skip), it ran once, and at least one
    other unit of its config was skipped with an error naming it."""
    config_name = first_unit.split("/")[0]
    with h5py.File(path, "r") as f:
        errs = [e for e in errors(f) if e[0] == config_name]
    prefix = f"skipped: {first_unit} failed: "
    own = [e for e in errs if e[1] == first_unit]
    if len(own) != 1 or own[0][4].startswith("skipped"):
        sys.exit(f"{path}: {first_unit} has {len(own)} error rows, not one of its own: {own}")
    skips = [e for e in errs if e[4].startswith(prefix)]
    if not skips:
        sys.exit(f"{path}: no unit of {config_name} was skipped after {first_unit} failed: {errs}")
    if any(e[4] != prefix + own[0][4] for e in skips):
        sys.exit(f"{path}: a skip does not carry {first_unit}'s error: {skips}")
    print(f"{path}: {first_unit} failed once, {len(skips)} unit(s) of {config_name} skipped naming it")


# A rank's parts are measured apart (by the rank, its units and rank 0): they add up to the wall
# time up to message transit (measured: under 0.05 s on 2 loaded cores) and scheduling noise.
TIMING_TOLERANCE_S = 0.25
TIMING_TOLERANCE_FRACTION = 0.01


def timing_segments(f):
    out = []
    for name in sorted(f["timing"], key=lambda n: (len(n), n)):
        g = f["timing"][name]
        seg = {k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()}
        for table in ("rank_times", "preparations"):
            seg[table] = [dict(zip(g[table].keys(), row))
                          for row in zip(*(column(g[table], k) for k in g[table].keys()))]
        out.append(seg)
    return out


def check_segment(path, i, seg):
    where = f"{path}: /timing/{i:03d}"
    ranks = seg["rank_times"]
    if len(ranks) != seg["ranks"] or [r["rank"] for r in ranks] != list(range(seg["ranks"])):
        sys.exit(f"{where}: rank rows {[r['rank'] for r in ranks]} for {seg['ranks']} ranks")
    wall = seg["wall_seconds"]
    if not math.isclose(sum(r["busy_seconds"] for r in ranks), seg["busy_seconds"], abs_tol=1e-6):
        sys.exit(f"{where}: the ranks' busy time does not sum to busy_seconds")
    if sum(r["units"] for r in ranks) != seg["units"]:
        sys.exit(f"{where}: the ranks' units do not sum to units")
    if wall > 0 and not math.isclose(seg["efficiency"], seg["busy_seconds"] / (seg["ranks"] * wall)):
        sys.exit(f"{where}: efficiency {seg['efficiency']} is not busy / (ranks x wall)")
    for r in ranks:
        kinds = sum(r[f"busy_{k}_seconds"] for k in ("prepare", "sanity", "coqa", "bench"))
        if not math.isclose(kinds, r["busy_seconds"], abs_tol=1e-6):
            sys.exit(f"{where}: rank {r['rank']}: busy by kind sums to {kinds}, not busy_seconds")
        parts = r["startup_seconds"] + r["busy_seconds"] + r["wait_seconds"] + r["end_idle_seconds"]
        if seg["ended"] == "finished" and \
                abs(parts - wall) > TIMING_TOLERANCE_S + TIMING_TOLERANCE_FRACTION * wall:
            sys.exit(f"{where}: rank {r['rank']}: startup + busy + wait + end idle = {parts:.2f} s, "
                     f"wall {wall:.2f} s")
    quantized = Counter()
    for p in seg["preparations"]:
        quantized[p["config"]] += p["quantized"]
    # Only calibrated configs (those with a prepare unit) must be computed once per sweep; a
    # data-free config is quantized by every rank that runs some of its units.
    with h5py.File(path, "r") as f:
        units = f["units"]
        calibrated = {c.decode() if isinstance(c, bytes) else c
                      for c, k in zip(units["config"][()], units["kind"][()])
                      if (k.decode() if isinstance(k, bytes) else k) == "prepare"}
    twice = [c for c, n in quantized.items() if n > 1 and c in calibrated]
    if twice:
        sys.exit(f"{where}: calibrated configs quantized on more than one rank: {twice}")


def timing(path, segments, ranks, snapshot_path=None):
    with h5py.File(path, "r") as f:
        if "timing" not in f:
            sys.exit(f"{path}: no /timing")
        segs = timing_segments(f)
        table = units(f)
        prepare_rows = Counter()
        for name in f["configs"]:
            if "prepare" in f["configs"][name]:
                for rank in column(f["configs"][name]["prepare"], "rank"):
                    prepare_rows[(name, int(rank))] += 1
    if len(segs) != int(segments) or segs[-1]["ranks"] != int(ranks):
        sys.exit(f"{path}: {len(segs)} timing segments, the last on {segs[-1]['ranks']} ranks; "
                 f"expected {segments} and {ranks}")
    for i, seg in enumerate(segs):
        check_segment(path, i, seg)
    first = segs[0]
    ran = Counter(row[1] for row in table.values() if row[0] != "todo")
    if len(segs) == 1 and {r["rank"]: r["units"] for r in first["rank_times"] if r["units"]} != dict(ran):
        sys.exit(f"{path}: units per rank {first['rank_times']} disagree with /units {dict(ran)}")
    counted = Counter({(p["config"], p["rank"]): p["count"] for p in first["preparations"]})
    if len(segs) == 1 and counted != prepare_rows:
        sys.exit(f"{path}: preparations {dict(counted)} disagree with the prepare tables "
                 f"{dict(prepare_rows)}")
    if snapshot_path:
        if os.path.exists(snapshot_path):
            with open(snapshot_path) as f:
                before = json.load(f)
            if json.loads(json.dumps(segs[:len(before)])) != before:
                sys.exit(f"{path}: an earlier run's timing changed")
        with open(snapshot_path, "w") as f:
            json.dump(segs, f)
    print(f"{path}: {len(segs)} timing segment(s), efficiency "
          + ", ".join(f"{s['efficiency']:.1%} on {s['ranks']}" for s in segs))


if __name__ == "__main__":
    commands = {"prepared": prepared, "progress": progress, "wait-partial": wait_partial, "partial": partial,
                "snapshot": snapshot, "complete": complete, "unchanged": unchanged,
                "same-results": same_results, "spread": spread, "failed": failed,
                "derived": derived,
                "skipped": skipped, "timing": timing}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
