#!/usr/bin/python3
"""The table and ratio logic of bench/compare_hf.py with made-up numbers (no torch needed), and
its reading of a real `qsweep eval` run on the CPU where QSWEEP_BUILD_DIR names a build:
    QSWEEP_BUILD_DIR=build /usr/bin/python3 -m unittest discover -s bench -p 'test_*.py'
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COQA = os.path.join(ROOT, "data", "coqa", "coqa_dev_format_sample_10stories.json")
BUILD = os.environ.get("QSWEEP_BUILD_DIR")
TOKENIZER = os.environ.get("QSWEEP_TOKENIZER",
                           os.path.join(ROOT, ".cache", "tokenizers", "llama3", "tokenizer.json"))

# 2 GB read per step, 1 TFLOP per prefill; yardsticks 4000 GB/s and 800 TFLOP/s (bf16).
YARDSTICKS = {"copy_bandwidth_gb_s": [3900, 4000, 4100],
              "matmul_tflop_s": {"bf16": [800, 790, 810], "fp16": [700]}}
ENTRY = {
    "config": "bf16", "compute_dtype": "bf16",
    "decode_bytes_per_step": 2e9, "prefill_flops": 1e12,
    "qsweep": {"decode_ms_per_token": [1.0, 1.0, 2.0], "prefill_ms": [2.5],
               "throughput_tokens_per_s": {"1": [1000], "4": [3000, 4000, 5000]},
               "coqa": {"generated_tokens": 2560, "seconds": 2.0}},
    "transformers": {"decode_ms_per_token": [10.0, 12.0, 11.0], "prefill_ms": [5.0],
                     "throughput_tokens_per_s": {"1": [90], "4": [400]},
                     "coqa": {"generated_tokens": 2560, "seconds": 20.0}},
}


class Figures(unittest.TestCase):

    def test_decode_and_prefill_are_fractions_of_the_yardsticks_of_the_same_run(self):
        f = compare_hf.config_figures(ENTRY, YARDSTICKS)
        q, h = f["qsweep"], f["transformers"]
        self.assertEqual(q["decode_ms_per_token"], 1.0)           # median of 1, 1, 2
        self.assertAlmostEqual(q["decode_gb_s"], 2000.0)          # 2 GB in 1 ms
        self.assertAlmostEqual(q["decode_fraction_of_copy_bandwidth"], 0.5)
        self.assertAlmostEqual(h["decode_fraction_of_copy_bandwidth"], 2e9 / 11e6 / 4000)
        self.assertAlmostEqual(q["prefill_tflop_s"], 400.0)       # 1 TFLOP in 2.5 ms
        self.assertAlmostEqual(q["prefill_fraction_of_matmul_rate"], 0.5)
        self.assertAlmostEqual(h["prefill_fraction_of_matmul_rate"], 0.25)
        self.assertEqual(q["throughput_tokens_per_s"], {1: 1000, 4: 4000})
        self.assertAlmostEqual(q["coqa_tokens_per_s"], 1280.0)

    def test_the_compute_dtype_picks_the_matmul_yardstick(self):
        f = compare_hf.config_figures({**ENTRY, "compute_dtype": "fp16"}, YARDSTICKS)
        self.assertAlmostEqual(f["qsweep"]["prefill_fraction_of_matmul_rate"], 400 / 700)

    def test_missing_figures_stay_missing(self):
        entry = {**ENTRY, "transformers": {}}
        h = compare_hf.config_figures(entry, YARDSTICKS)["transformers"]
        self.assertIsNone(h["decode_ms_per_token"])
        self.assertIsNone(h["decode_fraction_of_copy_bandwidth"])
        self.assertIsNone(h["coqa_tokens_per_s"])
        self.assertIsNone(compare_hf.ratio(1, 0))
        self.assertIsNone(compare_hf.ratio(None, 2))


class Table(unittest.TestCase):

    def test_ratio_column_is_qsweeps_speed_over_transformers(self):
        rows = {r[0]: r for r in compare_hf.table_rows(ENTRY, YARDSTICKS)}
        self.assertEqual(rows["decode ms/token (b1)"], ["decode ms/token (b1)", "1.000", "11.000",
                                                        "11.00x"])
        self.assertEqual(rows["decode % of copy bandwidth (b1)"][1:3], ["50.0 %", "4.5 %"])
        self.assertEqual(rows["prefill ms"][3], "2.00x")
        self.assertEqual(rows["tokens/s b4"], ["tokens/s b4", "4,000", "400", "10.00x"])
        self.assertEqual(rows["CoQA samples, generated tokens/s"][3], "10.00x")

    def test_a_config_without_transformers_figures_still_gets_its_table(self):
        entry = {k: v for k, v in ENTRY.items() if k != "transformers"}
        entry["transformers_error"] = "ImportError: no bitsandbytes"
        text = compare_hf.markdown({"gpu": "test GPU", "yardsticks": YARDSTICKS,
                                    "configs": [entry]})
        self.assertIn("### bf16", text)
        self.assertIn("| decode ms/token (b1) | 1.000 | — | — |", text)
        self.assertIn("copy bandwidth 4,000 GB/s", text)
        self.assertIn("bf16 800.0 TFLOP/s", text)
        self.assertIn("transformers failed: ImportError: no bitsandbytes", text)

    def test_a_config_qsweep_failed_on_is_named_in_the_table(self):
        text = compare_hf.markdown({"gpu": "test GPU", "yardsticks": YARDSTICKS, "configs": [],
                                    "failed": {"fp16": "qsweep exited 2:\nusage error"}})
        self.assertIn("### fp16\n\nqsweep failed, not compared: qsweep exited 2:", text)


class Inputs(unittest.TestCase):

    def test_coqa_prompts_are_the_last_turn_with_the_earlier_turns_before_it(self):
        with open(COQA, encoding="utf-8") as f:
            data = json.load(f)
        prompts = compare_hf.coqa_prompts(data, 3)
        self.assertEqual(len(prompts), 3)
        story = data["data"][0]
        story_id, prompt = prompts[0]
        self.assertEqual(story_id, story["id"])
        self.assertTrue(prompt.startswith(story["story"] + "\n\nQ: " +
                                          story["questions"][0]["input_text"] + "\n\nA: " +
                                          story["answers"][0]["input_text"] + "\n\n"))
        self.assertTrue(prompt.endswith("Q: " + story["questions"][-1]["input_text"] + "\n\nA:"))
        self.assertEqual(prompt.count("\n\nA:"), len(story["questions"]))
        self.assertEqual(compare_hf.sha256(prompt),
                         hashlib.sha256(prompt.encode("utf-8")).hexdigest())

    def test_samples_whose_answers_hold_unicode_line_breaks_read_whole(self):
        records = [{"doc": {"id": "a"}, "resps": [["one\u2028two\u0085three"]]}, {"doc": {"id": "b"}}]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "samples.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            self.assertEqual(compare_hf.read_jsonl(path), records)

    def test_eval_seconds_come_from_qsweep_evals_log_line(self):
        log = "[12:00:01 r0] loading\n[12:00:09 r0] 10 samples in 3.4 s on NVIDIA H200 (bf16)\n"
        self.assertEqual(compare_hf.parse_eval_seconds(log), (10, 3.4))
        with self.assertRaises(ValueError):
            compare_hf.parse_eval_seconds("nothing here")


@unittest.skipUnless(BUILD, "QSWEEP_BUILD_DIR names no qsweep build")
class QsweepEval(unittest.TestCase):
    """The command line and files compare_hf.py relies on, from the qsweep that is built: a
    change to either side breaks this test, not the device run."""

    def test_coqa_figures_come_from_the_samples_qsweep_eval_writes(self):
        qsweep = os.path.join(BUILD, "qsweep")
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model")
            subprocess.run([qsweep, "make-model", "--preset", "tiny", "--tokenizer", TOKENIZER,
                            "--out", model], check=True, capture_output=True)
            coqa = compare_hf.qsweep_coqa(qsweep, model, COQA, 3, "fp32", "cpu", 2, 5,
                                          os.path.join(tmp, "eval"))
        with open(COQA, encoding="utf-8") as f:
            prompts = compare_hf.coqa_prompts(json.load(f), 3)
        self.assertEqual(coqa["samples"], 3)
        self.assertEqual(coqa["prompt_sha256"], {i: compare_hf.sha256(p) for i, p in prompts})
        self.assertLessEqual(coqa["generated_tokens"], 3 * 5)
        self.assertGreater(coqa["seconds"], 0)


if __name__ == "__main__":
    unittest.main()
