"""qsweep_store.py on tests/data/store_v0_demo.h5, a store written by the qsweep of before the
field lists (tests/data/SOURCES.txt): old stores keep loading, and tables take their columns from
the file. Needs no build.

    /usr/bin/python3 -m unittest discover -s analysis/tests -p 'test_store_v0.py' -v
"""
import os
import shutil
import sys
import tempfile
import unittest

import h5py
import numpy as np

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V0_STORE = os.path.join(os.path.dirname(ANALYSIS), "tests", "data", "store_v0_demo.h5")
sys.path.insert(0, ANALYSIS)
import qsweep_store  # noqa: E402


class StoreV0Test(unittest.TestCase):

    def setUp(self):
        self.temp = tempfile.mkdtemp(prefix="qsweep-store-v0-")

    def tearDown(self):
        shutil.rmtree(self.temp, ignore_errors=True)

    def copy(self):
        path = os.path.join(self.temp, "store.h5")
        shutil.copy(V0_STORE, path)
        return path

    def test_old_store_loads_with_its_samples_metrics_and_benchmarks(self):
        store = qsweep_store.load(V0_STORE)
        self.assertEqual(list(store.configs.index), ["fp32", "bf16"])
        self.assertEqual(store.samples.groupby("config").size().to_dict(),
                         {"fp32": 10, "bf16": 10})
        self.assertEqual(list(store.metrics.index), ["fp32", "bf16"])
        self.assertEqual(store.metrics.loc["bf16", "em_delta_baseline"], "fp32")
        self.assertTrue(all(isinstance(g, list) for g in store.samples["golds"]))
        self.assertEqual(sorted(store.bench["measure"].unique()),
                         ["bandwidth_gb_s", "decode_ms_per_token", "prefill_ms", "throughput"])
        self.assertEqual(store.configs.loc["bf16", "model_bytes"], 16614016)
        self.assertEqual(store.missing, [])

    def test_sample_columns_are_the_files(self):
        with h5py.File(V0_STORE, "r") as f:
            columns = set(f["configs/fp32/samples"].keys())
        self.assertEqual(set(qsweep_store.load(V0_STORE).samples.columns), columns | {"config"})

    def test_a_column_qsweep_adds_later_is_read_without_a_change_here(self):
        path = self.copy()
        with h5py.File(path, "r+") as f:
            for name in f["configs"]:
                samples = f[f"configs/{name}/samples"]
                samples.create_dataset("new_field", data=np.arange(len(samples["id"])))
        store = qsweep_store.load(path)
        self.assertEqual(list(store.samples["new_field"][:3]), [0, 1, 2])

    def test_a_store_with_nothing_done_still_has_every_sample_column(self):
        path = self.copy()
        with h5py.File(path, "r+") as f:
            for name in f["configs"]:
                samples = f[f"configs/{name}/samples"]
                for column in list(samples.keys()):
                    dtype = samples[column].dtype
                    del samples[column]
                    samples.create_dataset(column, shape=(0,), dtype=dtype)
        store = qsweep_store.load(path)
        self.assertEqual(len(store.samples), 0)
        self.assertIn("f1", store.samples.columns)
        self.assertIn("stop_reason", store.samples.columns)


if __name__ == "__main__":
    unittest.main()
