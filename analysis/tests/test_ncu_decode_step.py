"""analysis/ncu_decode_step.py on data/ncu_decode_sample.csv, cut from the ncu-decode.csv of
tests/parity/run_ncu_on_gpu.sh (H200, 2026-12-02; the made Llama-3.2-1B-shaped model, 16 layers,
bf16, batch 1): ncu's preamble, header and units rows and launches 1400-2150 with the columns the
script reads. Launches 1456, 1629, 1804, 1977 and 2150 are ArgMax kernels, so the sample holds the
end of the prefill and the steps 1457-1629 (173 launches), 1630-1804 (175, the odd one) and
1805-1977, 1978-2150 (173 each); the middle of the three 173-launch steps is 1805-1977."""
import csv
import os
import subprocess
import sys
import tempfile
import unittest

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ANALYSIS, "ncu_decode_step.py")
SAMPLE = os.path.join(ANALYSIS, "tests", "data", "ncu_decode_sample.csv")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def table(*args):
    """(stdout, {kernel: CSV row}) of a run on the sample."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "step.csv")
        result = run(SAMPLE, "--csv", out, *args)
        if result.returncode != 0:
            raise AssertionError(f"exit {result.returncode}: {result.stderr}")
        with open(out, newline="") as f:
            return result.stdout, {r["kernel"]: r for r in csv.DictReader(f)}


class DecodeStep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stdout, cls.rows = table()

    def test_middle_typical_step(self):
        # Counted by hand in the sample: launches 1805-1977, the 175-launch step left out.
        self.assertIn("Decode step 1 of the 3 steps of 173 launches (IDs 1805-1977)", self.stdout)
        self.assertEqual(sum(int(r["calls"]) for r in self.rows.values()), 173)

    def test_call_counts(self):
        # Two norms per layer and the final one; one attention per layer; one lm_head GEMM
        # (128256 x 2048: the 66-block-row grid of the 256x8 tile).
        self.assertEqual(self.rows["add_rms_norm_kernel"]["calls"], "33")
        self.assertEqual(self.rows["decode_attention_kernel"]["calls"], "16")
        self.assertEqual(self.rows["cuBLAS 256x8 grid (2, 66, 1)"]["calls"], "1")
        self.assertEqual(self.rows["reduce_kernel ArgMaxOps"]["calls"], "1")

    def test_projections_apart(self):
        # q|k|v, o, gate|up and down each have their own row of 16 calls.
        gemms = {k: r["calls"] for k, r in self.rows.items() if k.startswith("cuBLAS")
                 and r["calls"] == "16"}
        self.assertEqual(sorted(gemms), ["cuBLAS 128x8 grid (2, 64, 1)",
                                         "cuBLAS 64x8 grid (4, 12, 1)",
                                         "cuBLAS 64x8 grid (4, 8, 1)",
                                         "cuBLAS 64x8 splitK grid (4, 24, 1)"])

    def test_times_and_shares(self):
        total_us = sum(float(r["us"]) for r in self.rows.values())
        self.assertAlmostEqual(total_us, 1453.984, places=3)  # sum of the sample's ns column
        self.assertAlmostEqual(sum(float(r["share_pct"]) for r in self.rows.values()), 100, 9)
        self.assertIn("kernel time 1454.0 µs", self.stdout)
        up = self.rows["cuBLAS 128x8 grid (2, 64, 1)"]
        self.assertAlmostEqual(float(up["read_gb_s"]),
                               float(up["read_bytes"]) / (float(up["us"]) * 1e3), 6)

    def test_markdown(self):
        self.assertIn("| kernel | calls | µs | share | DRAM read GB/s |", self.stdout)
        self.assertIn("upper bound", self.stdout)

    def test_other_step_and_measured(self):
        stdout, rows = table("--step", "0", "--bytes-per-step", "2473779200", "--step-ms", "1.295")
        self.assertIn("(IDs 1457-1629)", stdout)
        self.assertEqual(rows["add_rms_norm_kernel"]["calls"], "33")
        step_us = sum(float(r["us"]) for r in rows.values())
        self.assertIn(f"account for {100 * step_us / 1295:.1f} % of it", stdout)
        self.assertIn(f"{2473779200 / 1.295e6:.0f} GB/s over the measured step", stdout)

    def test_step_out_of_range(self):
        result = run(SAMPLE, "--step", "3")
        self.assertEqual(result.returncode, 1)
        self.assertIn("3 decode steps", result.stderr)


class BadInput(unittest.TestCase):
    def run_without(self, dropped):
        """The script on the sample less the lines `dropped` picks: it must exit 1, say nothing on
        stdout and name the file on stderr, which it returns."""
        with open(SAMPLE) as f:
            lines = [line for line in f if not dropped(line)]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.csv")
            with open(path, "w") as f:
                f.writelines(lines)
            result = run(path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertIn(path, result.stderr)
        return result.stderr

    def test_no_argmax(self):
        self.assertIn("argmax kernel", self.run_without(lambda line: "ArgMax" in line))

    def test_no_header(self):
        self.assertIn("no header row", self.run_without(lambda line: line.startswith('"ID"')))


if __name__ == "__main__":
    unittest.main()
