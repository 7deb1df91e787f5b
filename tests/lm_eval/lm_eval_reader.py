"""Reads an `lm_eval --output_path DIR --log_samples` directory as lm-eval's own tools do, written
from lm-evaluation-harness 0.4's published format (not its code): the results table
(utils.make_table: results, versions, n-shot, the "<metric>,<filter>" and "_stderr" keys), the
W&B logger (configs, config, n-samples, higher_is_better, and samples by the task's output_type
and metric_list) and the Zeno exporter (results_<date>.json and samples_<task>_<date>.jsonl per
model directory, config.model_args, arguments.gen_args_0.arg_0, resps[0][0], the metrics).

    python3 lm_eval_reader.py DIR      # prints the results table, exits 1 on a missing key

Every missing key raises FormatError naming the file and the key.
"""
import glob
import hashlib
import json
import os
import re
import sys

RESULTS_KEYS = ["results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
                "n-samples", "config", "git_hash", "date", "task_hashes", "model_name",
                "model_name_sanitized", "start_time", "end_time", "total_evaluation_time_seconds"]
CONFIG_KEYS = ["model", "model_args", "batch_size", "device", "limit", "bootstrap_iters",
               "gen_kwargs", "random_seed", "numpy_seed", "torch_seed", "fewshot_seed"]
TASK_CONFIG_KEYS = ["task", "output_type", "metric_list", "generation_kwargs", "num_fewshot",
                    "metadata"]
SAMPLE_KEYS = ["doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter",
               "metrics", "doc_hash", "prompt_hash", "target_hash"]


class FormatError(Exception):
    pass


def need(mapping, key, where):
    if not isinstance(mapping, dict) or key not in mapping:
        raise FormatError(f"{where}: missing key '{key}'")
    return mapping[key]


def sanitize_model_name(name):
    """The directory lm-eval's evaluation tracker puts a model's files in."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_samples(path, task_config):
    samples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            where = f"{path}:{number}"
            s = json.loads(line)
            for key in SAMPLE_KEYS:
                need(s, key, where)
            for metric in task_config["metric_list"]:
                need(s, metric["metric"], where)
            if task_config["output_type"] == "generate_until":
                prompt = need(need(need(s, "arguments", where), "gen_args_0", where), "arg_0", where)
                if sha256(prompt) != s["prompt_hash"]:
                    raise FormatError(f"{where}: prompt_hash is not the sha256 of arg_0")
                s["resps"][0][0]  # noqa: B018 (Zeno's output column)
            if sha256(json.dumps(s["doc"], indent=2, ensure_ascii=False)) != s["doc_hash"]:
                raise FormatError(f"{where}: doc_hash is not the sha256 of json.dumps(doc)")
            if sha256(str(s["target"])) != s["target_hash"]:
                raise FormatError(f"{where}: target_hash is not the sha256 of target")
            samples.append(s)
    return samples


def make_table(results):
    """The rows lm-eval's results table prints: task, version, filter, n-shot, metric, value,
    stderr."""
    rows = []
    for task, metrics in results["results"].items():
        version = results["versions"].get(task, "N/A")
        shots = results["n-shot"].get(task, " ")
        for name, value in sorted(metrics.items()):
            if name == "alias":
                continue
            metric, _, filter_name = name.partition(",")
            if metric.endswith("_stderr"):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            rows.append((metrics.get("alias", task), version, filter_name, shots, metric, value,
                         stderr))
    return rows


def read_model_dir(model_dir):
    """The newest results file of a model directory and its samples, as Zeno reads them."""
    results_files = sorted(glob.glob(os.path.join(model_dir, "results_*.json")))
    if not results_files:
        raise FormatError(f"{model_dir}: no results_<date>.json")
    path = results_files[-1]
    date = path[path.rfind("_") + 1:-len(".json")]
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    for key in RESULTS_KEYS:
        need(results, key, path)
    for key in CONFIG_KEYS:
        need(results["config"], key, f"{path}: config")
    samples = {}
    for task in results["results"]:
        for table in ("versions", "n-shot", "higher_is_better", "n-samples", "configs"):
            need(results[table], task, f"{path}: {table}")
        for count in ("original", "effective"):
            need(results["n-samples"][task], count, f"{path}: n-samples.{task}")
        task_config = results["configs"][task]
        for key in TASK_CONFIG_KEYS:
            need(task_config, key, f"{path}: configs.{task}")
        for metric in task_config["metric_list"]:
            need(results["results"][task], f"{metric['metric']},none", f"{path}: results.{task}")
        sample_path = os.path.join(model_dir, f"samples_{task}_{date}.jsonl")
        if task in results["task_hashes"]:
            if not os.path.exists(sample_path):
                raise FormatError(f"{sample_path}: missing (task_hashes has {task})")
            samples[task] = read_samples(sample_path, task_config)
            joined = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                             for s in samples[task])
            if sha256(joined) != results["task_hashes"][task]:
                raise FormatError(f"{path}: task_hashes.{task} does not match the samples")
            if len(samples[task]) != results["n-samples"][task]["effective"]:
                raise FormatError(f"{sample_path}: {len(samples[task])} samples, n-samples says "
                                  f"{results['n-samples'][task]['effective']}")
    return results, samples


def read_output_dir(path):
    """{model_name_sanitized: (results, samples)} for every model directory under `path`."""
    models = {}
    for entry in sorted(os.listdir(path)):
        model_dir = os.path.join(path, entry)
        if os.path.isdir(model_dir):
            models[entry] = read_model_dir(model_dir)
            if models[entry][0]["model_name_sanitized"] != entry:
                raise FormatError(f"{model_dir}: model_name_sanitized is "
                                  f"{models[entry][0]['model_name_sanitized']}")
    if not models:
        raise FormatError(f"{path}: no model directories")
    return models


if __name__ == "__main__":
    try:
        for name, (results, _) in read_output_dir(sys.argv[1]).items():
            print(name, results["config"]["model_args"])
            for row in make_table(results):
                print("  ", *row)
    except FormatError as e:
        print(f"lm_eval_reader: {e}", file=sys.stderr)
        sys.exit(1)
