"""Checks a qsweep results store for tests/slurm/test_slurm.sh, reading it with h5py only, as
docs/results-schema.md describes: /units holds 1-D columns `key` and `status` ("todo", "done",
"failed"), /configs/<name>/samples holds one row per sample with `id` and `turn`.

  check_store.py progress STORE                 print "DONE TOTAL"; exit 1 if STORE is unreadable
  check_store.py partial STORE SNAPSHOT.json    at least one unit done but not all; save them
  check_store.py complete STORE [SNAPSHOT.json] every unit done once, no sample twice; with a
                                                snapshot, its units were not run again
Exit code 0 when the check holds; the reason otherwise.
"""
import json
import sys
from collections import Counter

import h5py


def column(group, name):
    data = group[name]
    return list(data.asstr()[:]) if h5py.check_string_dtype(data.dtype) else list(data[:])


def units(f):
    """Unit key -> (status, rank, host, finished_at), failing on a key listed twice."""
    g = f["units"]
    keys = column(g, "key")
    twice = [k for k, n in Counter(keys).items() if n > 1]
    if twice:
        sys.exit(f"units listed more than once: {twice}")
    rows = zip(keys, column(g, "status"), column(g, "rank"), column(g, "host"),
               column(g, "finished_at"))
    return {k: (status, int(rank), host, at) for k, status, rank, host, at in rows}


def done_keys(table):
    return sorted(k for k, row in table.items() if row[0] == "done")


def progress(path):
    with h5py.File(path, "r") as f:
        table = units(f)
    print(len(done_keys(table)), len(table))


def partial(path, snapshot):
    with h5py.File(path, "r") as f:
        table = units(f)
    done = done_keys(table)
    if not 0 < len(done) < len(table):
        sys.exit(f"{path}: expected some but not all units done, got {len(done)} of {len(table)}")
    with open(snapshot, "w") as out:
        json.dump({k: table[k] for k in done}, out)
    print(f"{path}: partial, {len(done)} of {len(table)} units done")


def complete(path, snapshot=None):
    with h5py.File(path, "r") as f:
        table = units(f)
        not_done = {k: row[0] for k, row in table.items() if row[0] != "done"}
        if not table or not_done:
            sys.exit(f"{path}: units not done: {not_done or 'no units at all'}")
        samples = 0
        for name, config in f["configs"].items():
            if "samples" not in config:
                continue
            rows = list(zip(column(config["samples"], "id"), column(config["samples"], "turn")))
            twice = [r for r, n in Counter(rows).items() if n > 1]
            if twice:
                sys.exit(f"{path}: config {name} has samples (id, turn) twice: {twice[:5]}")
            samples += len(rows)
        if samples == 0:
            sys.exit(f"{path}: no samples in any config")
        errors = len(f["errors/unit"]) if "errors" in f else 0
    if snapshot:
        with open(snapshot) as src:
            before = json.load(src)
        # A unit done before the cancel keeps its rank, host and finish time: it was skipped.
        rerun = [k for k, row in before.items() if list(table[k]) != row]
        if rerun:
            sys.exit(f"{path}: units done before the resume ran again: {rerun}")
    print(f"{path}: complete, {len(table)} units done once, {samples} samples, {errors} errors"
          + (f", {len(before)} units kept from before the resume" if snapshot else ""))


if __name__ == "__main__":
    commands = {"progress": progress, "partial": partial, "complete": complete}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
