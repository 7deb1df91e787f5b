"""analysis/scaling.py on stores whose /timing segments are written here with h5py in the layout
of docs/results-schema.md (tests/mpi/test_sweep_mpi.sh's timing_recorded runs it on the stores of
real 3-rank and 1-rank sweeps)."""
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import pandas as pd

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALING = os.path.join(ANALYSIS, "scaling.py")

RANK_FIELDS = ["startup_seconds", "busy_prepare_seconds", "busy_sanity_seconds",
               "busy_coqa_seconds", "busy_bench_seconds", "busy_seconds", "wait_seconds",
               "end_idle_seconds", "load_seconds", "quantize_seconds"]


def write_segment(f, name, ranks, wall, busy_per_rank, ended="finished", preparations=(), units=40):
    g = f.require_group("timing").create_group(name)
    busy = busy_per_rank * ranks
    for key, value in [("started_at", "2026-12-02T05:00:00Z"), ("finished_at", "2026-12-02T05:01:00Z"),
                       ("ended", ended)]:
        g.attrs[key] = value
    for key, value in [("ranks", ranks), ("units", units), ("store_writes", units)]:
        g.attrs[key] = np.int64(value)
    for key, value in [("wall_seconds", wall), ("busy_seconds", busy),
                       ("efficiency", busy / (ranks * wall)), ("store_write_seconds", 0.5),
                       ("record_seconds", 0.75)]:
        g.attrs[key] = float(value)
    r = g.create_group("rank_times")
    r["rank"] = np.arange(ranks, dtype=np.int64)
    r["host"] = np.array(["node"] * ranks, dtype=h5py.string_dtype())
    r["units"] = np.full(ranks, units // ranks, dtype=np.int64)
    r["preparations"] = np.full(ranks, 1, dtype=np.int64)
    columns = {k: np.zeros(ranks) for k in RANK_FIELDS}
    columns["startup_seconds"][:] = 1
    columns["busy_coqa_seconds"][:] = busy_per_rank
    columns["busy_seconds"][:] = busy_per_rank
    columns["wait_seconds"][:] = 0.5
    columns["end_idle_seconds"][:] = wall - busy_per_rank - 1.5
    for k, v in columns.items():
        r[k] = v
    p = g.create_group("preparations")
    p["config"] = np.array([c for c, _, _, _ in preparations], dtype=h5py.string_dtype())
    p["rank"] = np.array([r for _, r, _, _ in preparations], dtype=np.int64)
    p["count"] = np.array([n for _, _, n, _ in preparations], dtype=np.int64)
    p["quantized"] = np.array([q for _, _, _, q in preparations], dtype=np.int64)
    p["load_seconds"] = np.zeros(len(preparations))
    p["quantize_seconds"] = np.zeros(len(preparations))


def make_store(path, segments, fingerprint="eval.limit=10\n"):
    with h5py.File(path, "w") as f:
        f.create_group("provenance").attrs["results_fingerprint"] = fingerprint
        for i, args in enumerate(segments):
            write_segment(f, f"{i:03d}", **args)


class ScalingTable(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_scaling(self, *stores, out=None):
        args = [sys.executable, SCALING, *stores] + (["--out", out] if out else [])
        return subprocess.run(args, capture_output=True, text=True)

    def test_speedup_efficiency_and_idle_per_rank_from_each_store(self):
        make_store(self.path("r1.h5"), [dict(ranks=1, wall=100, busy_per_rank=98)])
        make_store(self.path("r2.h5"), [
            dict(ranks=2, wall=60, busy_per_rank=49, ended="stopped by SIGTERM",
                 preparations=[("gptq", 0, 1, 1), ("gptq", 1, 3, 1)]),
            dict(ranks=2, wall=10, busy_per_rank=5, units=6)])  # the resumed rest of the sweep
        out = self.path("report")
        done = self.run_scaling(self.path("r1.h5"), self.path("r2.h5"), out=out)
        self.assertEqual(done.returncode, 0, done.stderr)
        runs = pd.read_csv(os.path.join(out, "scaling.csv"))
        self.assertEqual(list(runs["ranks"]), [1, 2, 2, 2])
        self.assertEqual(list(runs["segment"]), ["000", "000", "001", "all"])
        self.assertEqual(runs["units"][3], 46)
        self.assertAlmostEqual(runs["efficiency"][3], 108 / 140)
        self.assertEqual(runs["quantized_twice"][3], "gptq")
        self.assertAlmostEqual(runs["efficiency"][1], 98 / 120)
        self.assertAlmostEqual(runs["speedup"][0], 1.0)
        self.assertAlmostEqual(runs["speedup"][1], 100 / 60)
        self.assertEqual(runs["reloads"][1], 2)
        self.assertEqual(runs["quantized_twice"][1], "gptq")
        self.assertTrue(pd.isna(runs["quantized_twice"][2]))
        self.assertTrue(pd.isna(runs["speedup"][2]))  # fewer units than the 1-rank run
        self.assertTrue(pd.isna(runs["speedup"][3]))
        ranks = pd.read_csv(os.path.join(out, "scaling_ranks.csv"))
        self.assertEqual(len(ranks), 5)
        first = ranks[ranks["store"].str.endswith("r2.h5") & (ranks["segment"] == 0)]
        self.assertEqual(list(first["rank"]), [0, 1])
        self.assertAlmostEqual(first["busy_pct"].iloc[0], 100 * 49 / 60)
        self.assertAlmostEqual(first["end_idle_s"].iloc[0], 60 - 49 - 1.5)
        self.assertAlmostEqual(first["unaccounted_s"].iloc[0], 0)
        self.assertIn("| 81.7% |", done.stdout)
        with open(os.path.join(out, "scaling.md")) as f:
            self.assertEqual(f.read(), done.stdout)

    def test_a_run_stopped_and_resumed_is_added_up_and_is_the_yardstick(self):
        make_store(self.path("r1.h5"), [
            dict(ranks=1, wall=70, busy_per_rank=69, ended="stopped by SIGTERM", units=30),
            dict(ranks=1, wall=30, busy_per_rank=29, units=10)])
        make_store(self.path("r2.h5"), [dict(ranks=2, wall=50, busy_per_rank=49)])
        out = self.path("report")
        done = self.run_scaling(self.path("r1.h5"), self.path("r2.h5"), out=out)
        self.assertEqual(done.returncode, 0, done.stderr)
        runs = pd.read_csv(os.path.join(out, "scaling.csv"))
        self.assertEqual(list(runs["segment"]), ["000", "001", "all", "000"])
        total = runs.iloc[2]
        self.assertEqual(total["units"], 40)
        self.assertAlmostEqual(total["wall_s"], 100)
        self.assertAlmostEqual(total["efficiency"], 0.98)
        self.assertAlmostEqual(runs["speedup"][3], 2.0)

    def test_no_speedup_without_a_one_rank_run_of_the_same_settings(self):
        make_store(self.path("r1.h5"), [dict(ranks=1, wall=100, busy_per_rank=98)],
                   fingerprint="eval.limit=5\n")
        make_store(self.path("r2.h5"), [dict(ranks=2, wall=60, busy_per_rank=49)])
        out = self.path("report")
        self.assertEqual(self.run_scaling(self.path("r1.h5"), self.path("r2.h5"), out=out).returncode, 0)
        runs = pd.read_csv(os.path.join(out, "scaling.csv"))
        self.assertTrue(pd.isna(runs["speedup"][1]))

    def test_a_store_without_timing_is_named_and_fails(self):
        with h5py.File(self.path("old.h5"), "w") as f:
            f.create_group("provenance")
        make_store(self.path("r2.h5"), [dict(ranks=2, wall=60, busy_per_rank=49)])
        done = self.run_scaling(self.path("old.h5"), self.path("r2.h5"))
        self.assertEqual(done.returncode, 1)
        self.assertIn("old.h5: no /timing", done.stderr)
        self.assertIn("| 2 |", done.stdout)  # the readable store is still tabulated
        self.assertEqual(self.run_scaling(self.path("old.h5")).returncode, 1)


if __name__ == "__main__":
    unittest.main()
