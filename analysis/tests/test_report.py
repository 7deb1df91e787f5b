"""analysis/report.py and qsweep_store.py on a store made by a real `qsweep run`.

    QSWEEP_TEST_STORE=jobs/demo.h5 /usr/bin/python3 -m unittest discover -s analysis/tests -v

The store comes from QSWEEP_TEST_STORE; without it, from running QSWEEP_BUILD_DIR/qsweep on the
demo job (tiny random model, 3 MPI ranks when mpirun is there) into a temporary directory. With
neither, every test fails: a report that was never run against qsweep's real output proves
nothing, so it must not pass as skipped. Partial and split stores are made from the real one
with h5py, the way a killed or divided sweep leaves them.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import matplotlib
matplotlib.use("Agg")
import matplotlib.image
import numpy as np
import pandas as pd

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ANALYSIS)
REPORT = os.path.join(ANALYSIS, "report.py")
sys.path.insert(0, ANALYSIS)
sys.path.insert(0, os.path.join(ANALYSIS, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "lm_eval"))
import qsweep_store  # noqa: E402
import lm_eval_reader  # noqa: E402
import synthetic_store  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORE = None
TEMP = None
MODEL = None
JOB = None


def make_store(build, workdir):
    """A store from a real run of the demo job with the qsweep in `build`."""
    global MODEL, JOB
    qsweep = os.path.join(build, "qsweep")
    model = os.path.join(build, "demo-model")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        tokenizer = os.environ.get("QSWEEP_TOKENIZER", os.path.join(
            REPO, ".cache", "tokenizers", "llama3", "tokenizer.json"))
        model = os.path.join(workdir, "model")
        subprocess.run([qsweep, "make-model", "--preset", "tiny", "--tokenizer", tokenizer,
                        "--init-std", "0.2", "--out", model], check=True)
    # The demo job in a copy of the repository's layout, so that its logs land in `workdir`
    # rather than in the source tree.
    os.makedirs(os.path.join(workdir, "jobs"))
    shutil.copy(os.path.join(REPO, "jobs", "demo.yaml"), os.path.join(workdir, "jobs"))
    for linked in ("data", "configs"):
        os.symlink(os.path.join(REPO, linked), os.path.join(workdir, linked))
    store = os.path.join(workdir, "demo.h5")
    command = [qsweep, "run", os.path.join(workdir, "jobs", "demo.yaml"), "--store", store]
    if shutil.which("mpirun"):
        command = ["mpirun", "--oversubscribe", "-np", "3"] + \
            (["--allow-run-as-root"] if os.getuid() == 0 else []) + command
    subprocess.run(command, check=True, env={**os.environ, "QSWEEP_DEMO_MODEL": model})
    MODEL = model
    JOB = os.path.join(workdir, "jobs", "demo.yaml")
    return store


def setUpModule():
    global STORE, TEMP
    TEMP = tempfile.mkdtemp(prefix="qsweep-analysis-test-")
    if os.environ.get("QSWEEP_TEST_STORE"):
        STORE = os.environ["QSWEEP_TEST_STORE"]
    elif os.environ.get("QSWEEP_BUILD_DIR"):
        STORE = make_store(os.environ["QSWEEP_BUILD_DIR"], TEMP)
    else:
        raise RuntimeError("no store to test on: set QSWEEP_TEST_STORE to a store written by "
                           "`qsweep run`, or QSWEEP_BUILD_DIR to a build with the qsweep "
                           "executable to make one")
    if not os.path.exists(STORE):
        raise RuntimeError(f"QSWEEP_TEST_STORE={STORE}: no such file")


def tearDownModule():
    shutil.rmtree(TEMP, ignore_errors=True)


def run_report(*args):
    return subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True)


def read_strings(g, name):
    return list(g[name].asstr()[:])


def rewrite(g, name, values):
    """Replace one column of a table group, keeping its type."""
    dtype = g[name].dtype
    del g[name]
    if h5py.check_string_dtype(dtype):
        g.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    else:
        g.create_dataset(name, data=np.array(values, dtype=dtype))


def undo_units(path, keys):
    """Make `path` look as if the units `keys` never ran: status todo, their samples gone, and
    what qsweep derives from them (metrics, bench, sanity) gone too."""
    keys = set(keys)
    with h5py.File(path, "r+") as f:
        units = f["units"]
        rewrite(units, "status", ["todo" if k in keys else s for k, s in
                                  zip(read_strings(units, "key"), read_strings(units, "status"))])
        for name, config in f["configs"].items():
            samples = config["samples"]
            keep = [u not in keys for u in read_strings(samples, "unit")]
            for column in list(samples.keys()):
                values = samples[column].asstr()[:] if h5py.check_string_dtype(
                    samples[column].dtype) else samples[column][:]
                rewrite(samples, column, [v for v, k in zip(values, keep) if k])
            if not all(keep):
                config["metrics"].attrs.clear()
            for kind in ("bench", "sanity"):
                if f"{name}/{kind}" in keys and kind in config:
                    del config[kind]


def store_info(path):
    """configs in spec order, units as (key, config, kind), and the compare pairs."""
    with h5py.File(path, "r") as f:
        configs = sorted(f["configs"], key=lambda c: f["configs"][c].attrs["index"])
        units = list(zip(read_strings(f["units"], "key"), read_strings(f["units"], "config"),
                         read_strings(f["units"], "kind")))
        spec = f["provenance"].attrs["spec_text"]
    return configs, units, qsweep_store.parse_compare(spec)


def all_zero(path):
    with h5py.File(path, "r") as f:
        return all(f[f"configs/{c}/metrics"].attrs.get(score, 0) == 0
                   for c in f["configs"] for score in ("em", "f1"))


def expected_figures(path):
    _, _, compare = store_info(path)
    names = ["throughput", "memory", "latency"]
    if not all_zero(path):  # a random-weight model's store gets a note instead
        names += ["accuracy_vs_size", "deltas_vs_baseline", "domains"]
    return [n + ".png" for n in names] + [f"compare_{a}_vs_{b}.png" for a, b in compare]


def screenshot(html, png):
    """report.html as Debian's chromium renders it, headless."""
    browser = shutil.which("chromium")
    if browser is None:
        raise AssertionError("no chromium to open report.html in (scripts/setup.sh installs it)")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={png}",
                          "file://" + os.path.abspath(html)],
                         capture_output=True, text=True, timeout=120)
    if not os.path.exists(png):
        raise AssertionError(f"chromium wrote no screenshot: {run.stderr[-2000:]}")
    return matplotlib.image.imread(png)


class ReportTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.out = os.path.join(TEMP, "report")
        cls.result = run_report(STORE, "--out", cls.out)

    def test_report_runs_and_prints_what_it_wrote(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        for name in ["summary.md", "report.html", "summary.csv"] + expected_figures(STORE):
            self.assertIn(os.path.join(self.out, name), self.result.stdout)

    def test_summary_csv_has_the_store_metrics_of_every_config(self):
        csv = pd.read_csv(os.path.join(self.out, "summary.csv"), index_col="config",
                          float_precision="round_trip")
        with h5py.File(STORE, "r") as f:
            self.assertEqual(sorted(csv.index), sorted(f["configs"]))
            for name, config in f["configs"].items():
                metrics = dict(config["metrics"].attrs)
                self.assertTrue(metrics, f"config {name} has no metrics in the test store")
                for key, value in metrics.items():
                    if key.endswith("_baseline"):
                        self.assertEqual(csv.loc[name, "baseline"], value)
                    else:
                        self.assertEqual(csv.loc[name, key], value, f"{name} {key}")

    def test_summary_csv_benchmarks_agree_with_the_store_statistics(self):
        csv = pd.read_csv(os.path.join(self.out, "summary.csv"), index_col="config",
                          float_precision="round_trip")
        with h5py.File(STORE, "r") as f:
            for name, config in f["configs"].items():
                bench = config["bench"].attrs
                self.assertEqual(csv.loc[name, "model_bytes"], bench["model_bytes"])
                self.assertEqual(csv.loc[name, "peak_memory_bytes"], bench["peak_memory_bytes"])
                for ratio in ("decode_fraction_of_copy_bandwidth",
                              "prefill_fraction_of_matmul_rate"):
                    self.assertEqual(csv.loc[name, ratio], bench[ratio], f"{name} {ratio}")
                self.assertEqual(csv.loc[name, "device_kind"], "cpu")
                columns = ["prefill_ms_median", "decode_ms_per_token_median",
                           "decode_ms_per_token_p90", "bandwidth_gb_s_median",
                           "copy_bandwidth_gb_s_median", "prefill_tflop_s_median",
                           "matmul_tflop_s_median"] + \
                          [f"{c}_median" for c in config["bench"] if c.startswith("throughput_b")]
                for column in columns:
                    self.assertAlmostEqual(csv.loc[name, column], bench[column], places=9,
                                           msg=f"{name} {column}")

    def test_every_figure_is_a_valid_png_with_pdf_and_svg_beside_it(self):
        for name in expected_figures(STORE):
            path = os.path.join(self.out, name)
            stem = os.path.splitext(path)[0]
            with open(stem + ".pdf", "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-", name)
            with open(stem + ".svg", encoding="utf-8") as f:
                self.assertIn("<svg", f.read(), name)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), PNG_SIGNATURE, name)
            image = matplotlib.image.imread(path)
            self.assertGreater(image.shape[0] * image.shape[1], 100 * 100, name)
            self.assertGreater(image.std(), 0, f"{name} is blank")

    def test_summary_md_shows_every_figure(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            text = f.read()
        for name in expected_figures(STORE):
            self.assertIn(f"]({name})", text)

    def test_summary_md_labels_cpu_figures_and_shows_the_ratios(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn("% of copy bandwidth", text)
        self.assertIn("prefill % of matmul", text)
        with h5py.File(STORE, "r") as f:
            for name, config in f["configs"].items():
                ratio = config["bench"].attrs["decode_fraction_of_copy_bandwidth"]
                self.assertRegex(text, rf"\| {re.escape(name)} \| cpu \(CPU figures\) \|.*"
                                       rf"\| {100 * ratio:.1f}% \|")


    def test_report_html_is_one_self_contained_page_a_browser_renders(self):
        path = os.path.join(self.out, "report.html")
        with open(path, encoding="utf-8") as f:
            page = f.read()
        sources = re.findall(r'src="([^"]*)"', page)
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            self.assertEqual(len(sources), f.read().count("!["))
        self.assertGreaterEqual(len(sources), len(expected_figures(STORE)))
        self.assertTrue(all(src.startswith("data:image/png;base64,") for src in sources))
        self.assertNotIn("href=", page)
        self.assertIn("<table>", page)
        image = screenshot(path, os.path.join(TEMP, "report-html.png"))
        self.assertGreater(image.std(), 0.05, "the rendered page is blank")


class AllZeroStoreTest(unittest.TestCase):

    def test_a_store_scoring_zero_everywhere_gets_a_note_not_degenerate_axes(self):
        zero = os.path.join(TEMP, "zero.h5")
        shutil.copy(STORE, zero)
        with h5py.File(zero, "r+") as f:
            for name, config in f["configs"].items():
                for key in list(config["metrics"].attrs):
                    if not key.endswith(("_baseline", "_n", "_p")):
                        config["metrics"].attrs[key] = 0.0
                samples = config["samples"]
                for column in ("em", "f1"):
                    rewrite(samples, column, np.zeros(len(samples[column])))
        out = os.path.join(TEMP, "zero-report")
        run = run_report(zero, "--out", out)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(os.path.join(out, "summary.md"), encoding="utf-8") as f:
            self.assertIn("Every config scores 0 EM and 0 F1", f.read())
        self.assertFalse(os.path.exists(os.path.join(out, "accuracy_vs_size.png")))
        self.assertIn("every config scores 0", run.stderr)


class SyntheticStoreTest(unittest.TestCase):
    """The figures where scores differ, coincide and have intervals: ten made-up configs
    (synthetic_store.py) in the layout of the real store."""

    @classmethod
    def setUpClass(cls):
        cls.store = os.path.join(TEMP, "synthetic.h5")
        synthetic_store.make(STORE, cls.store)
        cls.out = os.path.join(TEMP, "synthetic-report")
        cls.result = run_report(cls.store, "--out", cls.out, "--x", "bits")

    def test_every_figure_is_drawn(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        for name in expected_figures(self.store):
            self.assertIn(os.path.join(self.out, name), self.result.stdout)
            image = matplotlib.image.imread(os.path.join(self.out, name))
            self.assertGreater(image.std(), 0, name)

    def test_domain_table_and_bits_axis(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn("## By domain (CoQA story source)", md)
        for domain in synthetic_store.DOMAINS:
            self.assertIn(f"{domain} (n=50)", md)
        self.assertIn("Accuracy vs bits per weight", md)

    def test_p_values_have_one_format(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            md = f.read()
        deltas = md[md.index("## Paired deltas"):md.index("## By domain")]
        self.assertIn("<0.001", deltas)
        self.assertFalse(re.search(r"\| [01]\.\d{4,} \|", deltas), "a p with more than 3 decimals")

    def test_a_compare_pair_with_the_baseline_reuses_the_store_statistics(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            md = f.read()
        line = next(x for x in md.splitlines() if x.startswith("| fp16 | nf4_dq |"))
        self.assertIn("| store |", line)
        with h5py.File(self.store, "r") as f:
            delta = f["configs/nf4_dq/metrics"].attrs["f1_delta"]
        self.assertIn(f"| {delta:.3f} |", line)


class PartialStoreTest(unittest.TestCase):

    def test_missing_units_and_metrics_are_listed_and_the_rest_is_written(self):
        configs, units, _ = store_info(STORE)
        self.assertGreaterEqual(len(configs), 2, "the test store needs two configs")
        first, last = configs[0], configs[-1]
        unfinished = [k for k, c, kind in units if c == last and kind == "coqa"][-1]
        no_bench = f"{first}/bench"
        partial = os.path.join(TEMP, "partial.h5")
        shutil.copy(STORE, partial)
        undo_units(partial, [unfinished, no_bench])

        out = os.path.join(TEMP, "partial-report")
        run = run_report(partial, "--out", out)
        self.assertEqual(run.returncode, 0, run.stderr)
        for text in (f"config {last}: no EM/F1 yet", f"{unfinished} todo",
                     f"config {first}: no benchmarks yet", f"{no_bench} todo"):
            self.assertIn(text, run.stderr)
            with open(os.path.join(out, "summary.md"), encoding="utf-8") as f:
                md = f.read()
            self.assertLess(md.index(text), md.index("## Accuracy"), "missing goes on top")

        csv = pd.read_csv(os.path.join(out, "summary.csv"), index_col="config",
                          float_precision="round_trip")
        self.assertEqual(list(csv.index), configs)
        self.assertTrue(pd.isna(csv.loc[last, "f1"]))
        self.assertTrue(pd.isna(csv.loc[first, "decode_ms_per_token_median"]))
        if len(configs) > 2:
            self.assertFalse(pd.isna(csv.loc[configs[1], "f1"]))
        self.assertFalse(pd.isna(csv.loc[last, "decode_ms_per_token_median"]))
        for name in ("throughput.png", "memory.png", "latency.png"):
            self.assertTrue(os.path.getsize(os.path.join(out, name)) > 0, name)

    def test_metrics_removed_are_reported(self):
        configs, _, _ = store_info(STORE)
        partial = os.path.join(TEMP, "no-metrics.h5")
        shutil.copy(STORE, partial)
        with h5py.File(partial, "r+") as f:
            f[f"configs/{configs[-1]}/metrics"].attrs.clear()
        store = qsweep_store.load(partial)
        self.assertIn(f"config {configs[-1]}: no EM/F1 metrics", store.missing)
        self.assertNotIn(configs[-1], store.metrics.index)


class MergeTest(unittest.TestCase):

    def split(self):
        """The real store as two stores of the same sweep: the last config's CoQA shards
        divided between them, every other unit in the first."""
        configs, units, _ = store_info(STORE)
        split_config = configs[-1]
        shards = [k for k, c, kind in units if c == split_config and kind == "coqa"]
        self.assertGreaterEqual(len(shards), 2, "the test store needs two shards a config")
        a, b = os.path.join(TEMP, "split-a.h5"), os.path.join(TEMP, "split-b.h5")
        shutil.copy(STORE, a)
        shutil.copy(STORE, b)
        half = len(shards) // 2
        undo_units(a, shards[half:])
        undo_units(b, [k for k, c, _ in units if c != split_config] + shards[:half] +
                   [f"{split_config}/bench", f"{split_config}/sanity"])
        return a, b, split_config

    def test_a_config_split_over_two_stores_is_merged(self):
        a, b, name = self.split()
        whole = qsweep_store.load(STORE)
        merged = qsweep_store.load([a, b])
        self.assertEqual(list(merged.configs.index), list(whole.configs.index))
        key = ["config", "id", "turn"]
        got = merged.samples.sort_values(key).reset_index(drop=True)
        want = whole.samples.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[key + ["em", "f1", "prediction"]],
                                      want[key + ["em", "f1", "prediction"]])
        self.assertEqual(merged.metrics.loc[name, "metrics_source"], "recomputed")
        for column in ("em", "f1", "em_n", "f1_stderr", "f1_t95_lo", "f1_t95_hi", "em_delta"):
            self.assertAlmostEqual(merged.metrics.loc[name, column],
                                   whole.metrics.loc[name, column], places=12, msg=column)
        self.assertFalse([m for m in merged.missing if "not done" in m], merged.missing)

        out = os.path.join(TEMP, "merged-report")
        run = run_report(a, b, "--out", out)
        self.assertEqual(run.returncode, 0, run.stderr)
        csv = pd.read_csv(os.path.join(out, "summary.csv"), index_col="config",
                          float_precision="round_trip")
        self.assertEqual(csv.loc[name, "store"], f"{a}, {b}")

    def test_units_done_in_both_stores_are_refused(self):
        with self.assertRaisesRegex(ValueError, "done in more than one"):
            qsweep_store.load([STORE, STORE])
        run = run_report(STORE, STORE, "--out", os.path.join(TEMP, "refused"))
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("done in more than one", run.stderr)

    def test_different_preparations_of_a_name_are_refused(self):
        a, b, name = self.split()
        with h5py.File(b, "r+") as f:
            f[f"configs/{name}"].attrs["fingerprint"] = "dtype=something-else\n"
        with self.assertRaisesRegex(ValueError, "different fingerprints"):
            qsweep_store.load([a, b])

    def test_prefix_keeps_same_named_configs_of_two_stores_apart(self):
        first, second = os.path.join(TEMP, "first.h5"), os.path.join(TEMP, "second.h5")
        shutil.copy(STORE, first)
        shutil.copy(STORE, second)
        configs, _, compare = store_info(STORE)
        store = qsweep_store.load([first, second], prefix=True)
        self.assertEqual(list(store.configs.index),
                         [f"{s}:{c}" for s in ("first", "second") for c in configs])
        self.assertEqual(len(store.compare), 2 * len(compare))
        self.assertEqual(len(store.samples), 2 * len(qsweep_store.load(STORE).samples))


class LmEvalOutputTest(unittest.TestCase):
    """The sweep's lm-eval files (and `qsweep eval --out`), read as lm-eval's tools read them."""

    def test_every_evaluated_config_has_lm_eval_files_with_the_store_scores(self):
        out = os.path.splitext(STORE)[0] + ".lm_eval"
        model_args = set()
        with h5py.File(STORE, "r") as f:
            for name, config in f["configs"].items():
                models = lm_eval_reader.read_output_dir(os.path.join(out, name))
                self.assertEqual(len(models), 1, name)
                results, samples = next(iter(models.values()))
                self.assertEqual(results["results"]["coqa"]["f1,none"],
                                 config["metrics"].attrs["f1"], name)
                self.assertEqual(len(samples["coqa"]), len(config["samples"]["id"]), name)
                self.assertTrue(lm_eval_reader.make_table(results), name)
                model_args.add(results["config"]["model_args"])
            self.assertEqual(len(model_args), len(f["configs"]), "model_args tell configs apart")

    def test_resps_are_the_generation_cut_at_until_and_score_by_their_first_line(self):
        out = os.path.splitext(STORE)[0] + ".lm_eval"
        differ = 0
        with h5py.File(STORE, "r") as f:
            for name, config in f["configs"].items():
                rows = config["samples"]
                stored = {(p, i): (g, a, int(n)) for p, i, g, a, n in zip(
                    rows["prompt_sha256"].asstr()[:], rows["id"].asstr()[:],
                    rows["generation"].asstr()[:], rows["prediction"].asstr()[:],
                    rows["generated_tokens"][:])}
                results, samples = next(iter(lm_eval_reader.read_output_dir(
                    os.path.join(out, name)).values()))
                self.assertNotIn("scored answer", results["qsweep"]["resps"], name)
                for s in samples["coqa"]:
                    generation, answer, tokens = stored[(s["prompt_hash"], s["doc"]["id"])]
                    self.assertEqual(s["resps"], [[generation]], name)
                    self.assertEqual(s["filtered_resps"], [generation], name)  # take_first
                    self.assertNotIn("\nQ:", generation, name)
                    # lm-eval's coqa process_results: results[0].strip().split("\n")[0]
                    self.assertEqual(s["filtered_resps"][0].strip().split("\n")[0], answer, name)
                    self.assertEqual(s["qsweep"], {"answer": answer, "resps_from": "generation",
                                                   "generated_tokens": tokens})
                    differ += generation != answer
        self.assertGreater(differ, 0, "no generation differs from its answer: nothing was tested")

    def test_a_store_from_before_generations_falls_back_to_the_answer_and_says_so(self):
        if JOB is None:
            self.skipTest("QSWEEP_TEST_STORE given: no job to resume the store with")
        old = os.path.join(TEMP, "before_generations.h5")
        shutil.copy(STORE, old)
        with h5py.File(old, "a") as f:
            for config in f["configs"].values():
                del config["samples"]["generation"]
        run = subprocess.run([os.path.join(os.environ["QSWEEP_BUILD_DIR"], "qsweep"), "run",
                              JOB, "--store", old], capture_output=True, text=True,
                             env={**os.environ, "QSWEEP_DEMO_MODEL": MODEL})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("resps hold the scored answer", run.stdout + run.stderr)
        with h5py.File(old, "r") as f:
            names = list(f["configs"])
            self.assertFalse(any("generation" in f["configs"][n]["samples"] for n in names))
        for name in names:
            results, samples = next(iter(lm_eval_reader.read_output_dir(
                os.path.join(os.path.splitext(old)[0] + ".lm_eval", name)).values()))
            n = len(samples["coqa"])
            self.assertIn(f"for {n} of {n} samples", results["qsweep"]["resps"], name)
            for s in samples["coqa"]:
                self.assertEqual(s["resps"], [[s["qsweep"]["answer"]]], name)
                self.assertEqual(s["qsweep"]["resps_from"], "answer", name)

    def test_the_reader_fails_on_a_missing_key(self):
        out = os.path.splitext(STORE)[0] + ".lm_eval"
        with h5py.File(STORE, "r") as f:
            name = next(iter(f["configs"]))
        copy = os.path.join(TEMP, "lm_eval_missing_key")
        shutil.copytree(os.path.join(out, name), copy)
        results = glob.glob(os.path.join(copy, "*", "results_*.json"))[0]
        with open(results, encoding="utf-8") as f:
            data = json.load(f)
        del data["n-samples"]
        with open(results, "w", encoding="utf-8") as f:
            json.dump(data, f)
        with self.assertRaisesRegex(lm_eval_reader.FormatError, "'n-samples'"):
            lm_eval_reader.read_output_dir(copy)

    def test_qsweep_eval_writes_lm_eval_files(self):
        if MODEL is None:
            self.skipTest("QSWEEP_TEST_STORE given: no model made to evaluate")
        out = os.path.join(TEMP, "eval-lm_eval")
        coqa = os.path.join(REPO, "data", "coqa", "coqa_dev_format_sample_10stories.json")
        run = subprocess.run([os.path.join(os.environ["QSWEEP_BUILD_DIR"], "qsweep"), "eval",
                              "--model", MODEL, "--coqa", coqa, "--limit", "2",
                              "--max-new-tokens", "8", "--out", out, "--log-samples"],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        models = lm_eval_reader.read_output_dir(out)
        results, samples = models[lm_eval_reader.sanitize_model_name(MODEL)]
        self.assertEqual(results["n-samples"]["coqa"], {"original": 10, "effective": 2})
        self.assertEqual(results["config"]["limit"], 2)
        self.assertEqual(len(samples["coqa"]), 2)


if __name__ == "__main__":
    unittest.main()
