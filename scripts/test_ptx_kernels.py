"""scripts/ptx_kernels.py on small PTX bodies: what counts as no change and what as a change."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import ptx_kernels  # noqa: E402

HEADER = ".visible .entry _ZN6qsweep4cuda45_GLOBAL__N__%s_4gemvEv(\n)\n{\n"
BODY = """\t.reg .f32 \t%%f<%d>;
\tld.shared.v4.f32 \t{%%f%d, %%f%d, %%f%d, %%f%d}, [%%r5+16];
%s\tfma.rn.f32 \t%%f20, %%f%d, %%f%d, %%f%d;
\tst.shared.f32 \t[%%r5], %%f20;
}
"""


def kernel(namespace="39944aa4", first=1, repeated_load="", fma=(1, 3, 4)):
    regs = [first + i for i in range(4)]
    a, b, c = (regs[i - 1] for i in fma)
    return HEADER % namespace + BODY % ((first + 30,) + tuple(regs) + (repeated_load, a, b, c))


class PtxKernelsTest(unittest.TestCase):
    def compare(self, before, after):
        with tempfile.TemporaryDirectory() as d:
            paths = [os.path.join(d, n) for n in ("a.ptx", "b.ptx")]
            for path, text in zip(paths, (before, after)):
                with open(path, "w") as f:
                    f.write(text)
            return subprocess.run([sys.executable, ptx_kernels.__file__] + paths,
                                  capture_output=True, text=True)

    def test_register_numbers_and_namespace_are_no_change(self):
        run = self.compare(kernel(), kernel(namespace="79eb380f", first=7))
        self.assertEqual(run.returncode, 0, run.stdout)
        self.assertIn("0 changed", run.stdout)

    def test_a_second_load_of_words_already_read_is_no_change(self):
        again = "\tld.shared.v2.f32 \t{%f40, %f41}, [%r5+24];\n"
        run = self.compare(kernel(), kernel(repeated_load=again))
        self.assertEqual(run.returncode, 0, run.stdout)

    def test_a_load_of_other_words_is_a_change(self):
        other = "\tld.shared.v2.f32 \t{%f40, %f41}, [%r5+32];\n"
        run = self.compare(kernel(), kernel(repeated_load=other))
        self.assertEqual(run.returncode, 1, run.stdout)

    def test_other_operands_are_a_change(self):
        run = self.compare(kernel(), kernel(fma=(3, 1, 4)))
        self.assertEqual(run.returncode, 1, run.stdout)
        self.assertIn("changed _ZN6qsweep4cuda45_GLOBAL__N__4gemvEv", run.stdout)

    def test_a_kernel_added_is_reported(self):
        two = kernel() + kernel().replace("4gemvEv", "5gemv2Ev")
        run = self.compare(kernel(), two)
        self.assertEqual(run.returncode, 1, run.stdout)
        self.assertIn("1 added", run.stdout)


if __name__ == "__main__":
    unittest.main()
