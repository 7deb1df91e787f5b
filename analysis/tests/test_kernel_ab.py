"""analysis/kernel_ab.py on two small kernel-benchmark files written here, in the layout
qsweep_bench_kernels writes (weight, dequantize and attention rows), and on a file that is not
one."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ANALYSIS, "kernel_ab.py")


def bench(copy_gbps, rows):
    return {"device": "NVIDIA H200", "date": "2026-12-03T18:00:00Z",
            "copy_bandwidth_GBps": copy_gbps, "results": rows}


def weight(kernel, m, us):
    return {"kernel": kernel, "out": 8192, "in": 2048, "M": m, "median_us": us}


A = bench(4200.0, [weight("nf4_gemv", 1, 8.0), weight("nf4_gemv", 4, 10.0),
                   {"kernel": "dequant_nf4", "out": 8192, "in": 2048, "median_us": 40.0},
                   {"kernel": "attention_split", "context": 512, "head_dim": 128, "M": 1,
                    "median_us": 16.0},
                   weight("int4_g128_gemv", 1, 12.0)])
B = bench(4150.0, [weight("nf4_gemv", 1, 6.0), weight("nf4_gemv", 4, 10.0),
                   {"kernel": "dequant_nf4", "out": 8192, "in": 2048, "median_us": 44.0},
                   {"kernel": "attention_split", "context": 512, "head_dim": 128, "M": 1,
                    "median_us": 8.0},
                   weight("int8_g128_gemv", 1, 13.0)])


def run(a, b, *args):
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, doc in (("a.json", a), ("b.json", b)):
            paths.append(os.path.join(d, name))
            with open(paths[-1], "w") as f:
                f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return subprocess.run([sys.executable, SCRIPT, *paths, *args], capture_output=True,
                              text=True)


class KernelAb(unittest.TestCase):
    def test_rows_both_runs_have_with_ratios(self):
        result = run(A, B)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn("A: NVIDIA H200, 2026-12-03T18:00:00Z, copy bandwidth 4200 GB/s", lines)
        self.assertIn("B: NVIDIA H200, 2026-12-03T18:00:00Z, copy bandwidth 4150 GB/s", lines)
        self.assertIn("| nf4_gemv | 8192 x 2048 | 1 | 8.00 | 6.00 | 0.750 |", lines)
        self.assertIn("| nf4_gemv | 8192 x 2048 | 4 | 10.00 | 10.00 | 1.000 |", lines)
        self.assertIn("| dequant_nf4 | 8192 x 2048 | - | 40.00 | 44.00 | 1.100 |", lines)
        self.assertIn("| attention_split | 512 x 128 | 1 | 16.00 | 8.00 | 0.500 |", lines)
        self.assertNotIn("int4_g128_gemv", result.stdout)
        self.assertIn("rows only in A: 1, only in B: 1", lines)

    def test_kernel_and_rows_filters(self):
        result = run(A, B, "--kernel", "nf4", "--rows", "4")
        self.assertEqual(result.returncode, 0, result.stderr)
        body = [l for l in result.stdout.splitlines() if l.startswith("| ") and "---" not in l]
        self.assertEqual(body[1:], ["| nf4_gemv | 8192 x 2048 | 4 | 10.00 | 10.00 | 1.000 |"])

    def test_a_file_that_is_not_a_benchmark_is_named(self):
        result = run(A, '{"stats": {}}')
        self.assertEqual(result.returncode, 1)
        self.assertIn("b.json is not a kernel-benchmark JSON", result.stderr)
        self.assertIn("'results' list", result.stderr)


if __name__ == "__main__":
    unittest.main()
