"""The bad-input suite: every kind of broken input a cluster user can hand qsweep is refused before
any work, by name.

  bad_inputs.py BUILD_DIR [CASE...]

Each case starts from a copy of one good sweep (a tiny made model with the real Llama-3
tokenizer, the shipped CoQA sample, a job file, and a store written by a real run of that job),
breaks one thing, and runs the commands that would read it: `qsweep plan` and `qsweep run` for
job, model, tokenizer, CoQA and store inputs (some also under `mpirun -np 2`), `qsweep eval`,
`generate` or `bench` for their options. For every command it asserts
  - a non-zero exit code (2: refused before the sweep started),
  - a message naming the file, key, tensor or option that is wrong (and why),
  - no work started: no unit is reported done, no cache entry or lm-eval file is written,
  - the store byte for byte as it was (for `run` too),
  - under mpirun, one message from rank 0 and no MPI_ABORT / ORTE_ERROR_LOG banner.
Exit 0 when every case holds; each failure is printed with the command's output.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COQA = os.path.join(REPO, "data", "coqa", "coqa_dev_format_sample_10stories.json")
TOKENIZER_DIR = os.path.join(REPO, ".cache", "tokenizers", "llama3")

JOB = """\
name: bad
model: model
tokenizer: model
store: store.h5
device: cpu
baseline: fp32
configs:
  - {name: fp32, dtype: fp32}
  - {name: bf16, dtype: bf16}
evaluation:
  coqa: coqa.json
  limit: 2
  shard_size: 2
  batch_size: 2
  max_new_tokens: 4
  bootstrap_resamples: 1000
benchmarks: {prefill_tokens: 8, decode_tokens: 4, batch_sizes: [1], warmup: 0, repeats: 1}
"""

MPI_BANNERS = ("MPI_ABORT", "ORTE_ERROR_LOG", "MPI_Abort")


# --- files of a case ----------------------------------------------------------------------------

def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def edit_json(path, change):
    """Rewrites a JSON file after `change` edited its value in place."""
    with open(path) as f:
        value = json.load(f)
    change(value)
    write(path, json.dumps(value))


def safetensors_parts(path):
    data = read(path)
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_safetensors_parts(path, header, body):
    text = json.dumps(header).encode()
    write(path, struct.pack("<Q", len(text)) + text + body)


def edit_header(path, change):
    header, body = safetensors_parts(path)
    change(header)
    write_safetensors_parts(path, header, body)


def rename_key(mapping, old, new):
    mapping[new] = mapping.pop(old)


class Case:
    """A copy of the good sweep in its own directory. The model directory's files are symlinks to
    the good model's, except the ones a case changes (own() makes a real copy first)."""

    def __init__(self, root, fixture, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "model"))
        for f in os.listdir(os.path.join(fixture, "model")):
            os.symlink(os.path.join(fixture, "model", f), os.path.join(self.dir, "model", f))
        shutil.copy(os.path.join(fixture, "coqa.json"), self.path("coqa.json"))
        shutil.copy(os.path.join(fixture, "store.h5"), self.path("store.h5"))
        write(self.path("job.yaml"), JOB)

    def path(self, name):
        return os.path.join(self.dir, name)

    def own(self, name):
        """A real, writable copy of a model file (in place of the symlink); its path."""
        p = self.path(name)
        if os.path.islink(p):
            target = os.readlink(p)
            os.remove(p)
            shutil.copy(target, p)
        return p

    def job(self, old, new):
        text = read(self.path("job.yaml")).decode()
        assert old in text, f"the job has no {old!r}"
        write(self.path("job.yaml"), text.replace(old, new, 1))


# --- the cases: (name, what breaks it, commands, text the message must hold) --------------------

def tensor_labelled_i32(c):
    # The same four bytes per value: a loader that trusted the label would read garbage integers.
    edit_header(c.own("model/model.safetensors"),
                lambda h: h["model.norm.weight"].update(dtype="I32"))


def tensor_missing(c):
    edit_header(c.own("model/model.safetensors"),
                lambda h: rename_key(h, "model.layers.1.mlp.down_proj.weight",
                                     "model.layers.1.mlp.down.weight"))


def tensor_reshaped(c):
    # Same bytes, another shape: [64] as [8, 8].
    edit_header(c.own("model/model.safetensors"),
                lambda h: h["model.layers.0.input_layernorm.weight"].update(shape=[8, 8]))


def tensor_byte_count(c):
    def change(h):
        t = h["model.norm.weight"]
        t["data_offsets"] = [t["data_offsets"][0], t["data_offsets"][1] - 4]
    edit_header(c.own("model/model.safetensors"), change)


def tensor_past_the_end(c):
    def change(h):
        t = h["model.norm.weight"]
        size = t["data_offsets"][1] - t["data_offsets"][0]
        t["data_offsets"] = [10 ** 9, 10 ** 9 + size]
    edit_header(c.own("model/model.safetensors"), change)


def truncated_weights(c):
    p = c.own("model/model.safetensors")
    data = read(p)
    write(p, data[:len(data) // 2 | 1])


def header_length_too_big(c):
    p = c.own("model/model.safetensors")
    data = read(p)
    write(p, struct.pack("<Q", len(data) * 2) + data[8:])


def header_not_json(c):
    p = c.own("model/model.safetensors")
    header, body = safetensors_parts(p)
    text = b"{not json" + b" " * 64
    write(p, struct.pack("<Q", len(text)) + text + body)


def header_entry_without_dtype(c):
    edit_header(c.own("model/model.safetensors"), lambda h: h["model.norm.weight"].pop("dtype"))


def sharded_index_names_missing_shard(c):
    os.remove(c.path("model/model.safetensors"))
    write(c.path("model/model.safetensors.index.json"),
          json.dumps({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}))


def no_weights(c):
    os.remove(c.path("model/model.safetensors"))


def config(change):
    return lambda c: edit_json(c.own("model/config.json"), change)


def set_key(key, value):
    def change(j):
        j[key] = value
    return change


def drop_key(key):
    return lambda j: j.pop(key)


def shrink_intermediate(j):
    j["intermediate_size"] = j["intermediate_size"] // 2


def text_file(name, text):
    return lambda c: write(c.own(name) if os.path.islink(c.path(name)) else c.path(name), text)


def tokenizer_model_type(c):
    edit_json(c.own("model/tokenizer.json"), lambda j: j["model"].update(type="Unigram"))


def tokenizer_larger_than_model(c):
    # An added token past the model's embedding table, as another model's tokenizer would have.
    edit_json(c.own("model/tokenizer.json"), lambda j: j["added_tokens"].append(
        {"id": 130000, "content": "<|not_this_models|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}))


def coqa_without_questions(c):
    edit_json(c.path("coqa.json"), lambda j: j["data"][0].pop("questions"))


def coqa_empty(c):
    edit_json(c.path("coqa.json"), lambda j: j.update(data=[]))


def store_of_another_job(c):
    c.job("bootstrap_resamples: 1000", "bootstrap_resamples: 1000\n  mode: official")


def store_not_hdf5(c):
    write(c.path("store.h5"), b"this is not an HDF5 file\n" * 40)


def store_truncated(c):
    data = read(c.path("store.h5"))
    write(c.path("store.h5"), data[:len(data) // 3])


PLAN_RUN = ("plan", "run")
ALL = ("plan", "run", "mpirun")

CASES = [
    # job files
    ("job_duplicate_top_level_key", lambda c: c.job("device: cpu\n", "device: cpu\ndevice: auto\n"),
     ALL, ["job.yaml:6", "key 'device'", "appears twice"]),
    ("job_duplicate_nested_key", lambda c: c.job("  limit: 2\n", "  limit: 2\n  limit: 5\n"),
     PLAN_RUN, ["job.yaml:13", "key 'evaluation.limit'", "appears twice"]),
    ("job_duplicate_key_in_flow_mapping",
     lambda c: c.job("{name: bf16, dtype: bf16}", "{name: bf16, dtype: bf16, dtype: fp32}"),
     PLAN_RUN, ["job.yaml:9", "key 'configs[1].dtype'", "appears twice"]),
    ("job_unknown_key", lambda c: c.job("baseline:", "baselien:"), PLAN_RUN,
     ["job.yaml:6", "key 'baselien'", "did you mean 'baseline'"]),
    ("job_invalid_yaml", lambda c: c.job("configs:\n", "configs: [\n"), PLAN_RUN,
     ["job.yaml", "invalid YAML"]),
    ("job_baseline_not_a_config", lambda c: c.job("baseline: fp32", "baseline: fp16"), PLAN_RUN,
     ["job.yaml:6", "key 'baseline'", "'fp16' is not a config"]),
    ("job_device_unknown", lambda c: c.job("device: cpu", "device: tpu"), PLAN_RUN,
     ["job.yaml:5", "key 'device'", "tpu"]),
    ("job_coqa_missing", lambda c: os.remove(c.path("coqa.json")), PLAN_RUN,
     ["key 'evaluation.coqa'", "coqa.json' does not exist"]),
    ("job_batch_size_zero", lambda c: c.job("batch_size: 2", "batch_size: 0"), PLAN_RUN,
     ["key 'evaluation.batch_size'", "must be a positive integer, got 0"]),
    ("job_count_out_of_range", lambda c: c.job("max_new_tokens: 4", "max_new_tokens: 2000000000"),
     PLAN_RUN, ["key 'evaluation.max_new_tokens'", "must be at most 1000000000"]),
    ("job_kv_cache_too_big", lambda c: c.job("max_new_tokens: 4", "max_new_tokens: 200000000"),
     ("run", "mpirun"), ["evaluation.max_new_tokens 200000000", "KV cache", "GiB"]),
    # model directories
    ("model_dir_missing", lambda c: shutil.rmtree(c.path("model")), PLAN_RUN,
     ["key 'model'", "does not exist"]),
    ("model_no_weights", no_weights, ALL, ["model", "no model.safetensors"]),
    ("model_index_names_missing_shard", sharded_index_names_missing_shard, PLAN_RUN,
     ["model-00001-of-00002.safetensors", "cannot open"]),
    # config.json and generation_config.json
    ("config_not_json", text_file("model/config.json", "{\"vocab_size\": 12"), PLAN_RUN,
     ["config.json", "not valid JSON"]),
    ("config_missing_hidden_size", config(drop_key("hidden_size")), PLAN_RUN,
     ["config.json", "missing key 'hidden_size'"]),
    ("config_other_model_type", config(set_key("model_type", "mistral")), PLAN_RUN,
     ["config.json", "model_type 'mistral' is not supported"]),
    ("config_other_architecture", config(set_key("architectures", ["GPT2LMHeadModel"])), PLAN_RUN,
     ["config.json", "architectures", "GPT2LMHeadModel"]),
    ("config_heads_not_multiple_of_kv_heads", config(set_key("num_key_value_heads", 3)), PLAN_RUN,
     ["config.json", "num_attention_heads (4) must be a multiple of num_key_value_heads (3)"]),
    ("config_odd_head_dim", config(set_key("head_dim", 15)), PLAN_RUN,
     ["config.json", "head_dim 15 is odd"]),
    ("config_shapes_disagree_with_weights", config(shrink_intermediate), ALL,
     ["model.safetensors", "mlp.gate_proj.weight", "config.json implies"]),
    ("config_vocab_smaller_than_its_token_ids", config(set_key("vocab_size", 1000)), PLAN_RUN,
     ["config.json", "is outside the vocabulary (vocab_size 1000)"]),
    ("config_vocab_disagrees_with_embedding",
     config(lambda j: j.update(vocab_size=j["vocab_size"] + 8)), PLAN_RUN,
     ["model.safetensors", "tensor 'model.embed_tokens.weight' has shape", "config.json implies"]),
    ("config_rope_scaling_unsupported", config(set_key("rope_scaling", {"rope_type": "yarn", "factor": 4})),
     PLAN_RUN, ["config.json", "rope_scaling type 'yarn' is not supported"]),
    ("config_max_positions_not_a_number", config(set_key("max_position_embeddings", "8k")), PLAN_RUN,
     ["config.json", "key 'max_position_embeddings' must be a positive integer"]),
    ("generation_config_not_json", text_file("model/generation_config.json", "{eos"), PLAN_RUN,
     ["generation_config.json", "not valid JSON"]),
    ("generation_config_eos_not_an_id", text_file("model/generation_config.json",
                                                  "{\"eos_token_id\": \"</s>\"}"), PLAN_RUN,
     ["generation_config.json", "key 'eos_token_id' must be a token id"]),
    # safetensors headers
    ("safetensors_float_tensor_labelled_i32", tensor_labelled_i32, ALL,
     ["model.safetensors", "tensor 'model.norm.weight' is labelled I32"]),
    ("safetensors_tensor_missing", tensor_missing, PLAN_RUN,
     ["model.safetensors", "tensor 'model.layers.1.mlp.down_proj.weight' is missing"]),
    ("safetensors_tensor_reshaped", tensor_reshaped, PLAN_RUN,
     ["model.safetensors", "model.layers.0.input_layernorm.weight", "shape [8, 8]"]),
    ("safetensors_byte_count_wrong", tensor_byte_count, PLAN_RUN,
     ["model.safetensors", "tensor 'model.norm.weight' has 252 bytes", "needs 256"]),
    ("safetensors_offsets_past_the_end", tensor_past_the_end, PLAN_RUN,
     ["model.safetensors", "tensor 'model.norm.weight' ends at byte"]),
    ("safetensors_truncated", truncated_weights, ALL, ["model.safetensors", "truncated"]),
    ("safetensors_header_length_too_big", header_length_too_big, PLAN_RUN,
     ["model.safetensors", "header length", "exceeds the file size"]),
    ("safetensors_header_not_json", header_not_json, PLAN_RUN,
     ["model.safetensors", "header is not valid JSON"]),
    ("safetensors_entry_without_dtype", header_entry_without_dtype, PLAN_RUN,
     ["model.safetensors", "tensor 'model.norm.weight'", "has no string 'dtype'"]),
    # tokenizer files
    ("tokenizer_not_json", text_file("model/tokenizer.json", "{\"model\": "), ALL,
     ["tokenizer.json", "malformed JSON"]),
    ("tokenizer_unsupported_model", tokenizer_model_type, PLAN_RUN,
     ["tokenizer.json", "Unigram"]),
    ("tokenizer_not_the_models", tokenizer_larger_than_model, PLAN_RUN,
     ["tokenizer.json: has 130001 tokens", "vocab_size 128256", "not the model's"]),
    ("tokenizer_config_not_json", text_file("model/tokenizer_config.json", "{\"add_bos_token\": tru"),
     PLAN_RUN, ["tokenizer_config.json", "malformed JSON"]),
    # CoQA files
    ("coqa_not_json", text_file("coqa.json", "{\"data\": [}"), PLAN_RUN,
     ["coqa.json", "not valid JSON"]),
    ("coqa_story_without_questions", coqa_without_questions, PLAN_RUN,
     ["coqa.json", "missing field 'questions'"]),
    ("coqa_no_stories", coqa_empty, PLAN_RUN, ["coqa.json", "holds no stories"]),
    # the device
    ("device_cuda_without_gpu", lambda c: c.job("device: cpu", "device: cuda"), ("run", "mpirun"),
     ["device 'cuda' was asked for", "sees no GPU"]),
    # stores
    ("store_of_another_job", store_of_another_job, PLAN_RUN,
     ["store.h5", "mode was lm_eval, now official"]),
    ("store_not_hdf5", store_not_hdf5, PLAN_RUN, ["store.h5"]),
    ("store_truncated", store_truncated, PLAN_RUN, ["store.h5"]),
    ("store_locked", lambda c: None, ("run-locked",), ["store.h5.lock"]),
    # CLI options
    ("cli_eval_batch_size_zero", lambda c: None, ("eval --batch-size 0",), ["--batch-size", "got 0"]),
    ("cli_eval_limit_negative", lambda c: None, ("eval --limit -1",), ["--limit", "got -1"]),
    ("cli_generate_max_new_tokens_negative", lambda c: None, ("generate --max-new-tokens -3",),
     ["--max-new-tokens", "got -3"]),
    ("cli_generate_max_new_tokens_too_big", lambda c: None,
     ("generate --max-new-tokens 2000000000",),
     ["--max-new-tokens 2000000000 with --batch-size", "KV cache", "GiB"]),
    ("cli_bench_repeats_zero", lambda c: None, ("bench --repeats 0",), ["--repeats", "got 0"]),
]


# --- running -------------------------------------------------------------------------------------

def command(qsweep, c, what):
    if what == "plan":
        return [qsweep, "plan", c.path("job.yaml")]
    if what in ("run", "run-locked"):
        return [qsweep, "run", c.path("job.yaml")]
    if what == "mpirun":
        mpirun = ["mpirun", "--oversubscribe", "-np", "2"]
        if os.geteuid() == 0:
            mpirun.append("--allow-run-as-root")
        return mpirun + [qsweep, "run", c.path("job.yaml")]
    sub, *options = what.split()
    model = ["--model", c.path("model"), "--device", "cpu"]
    if sub == "eval":
        return [qsweep, "eval", *model, "--coqa", c.path("coqa.json"), *options]
    if sub == "generate":
        return [qsweep, "generate", *model, "--prompt", "The capital of France is", *options]
    return [qsweep, "bench", *model, *options]


def files_of(directory):
    """Every file under `directory` with its bytes' hash; logs (written before the job is read),
    lock files (kept by design, store_lock.cpp) and the weight-hash cache (facts about the
    inputs, filled while they are checked, not results: file_hashes.cpp) aside."""
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "logs"]
        for f in files:
            p = os.path.join(root, f)
            if not f.endswith(".lock") and f != "file_hashes.json":
                out[os.path.relpath(p, directory)] = hashlib.sha256(read(p)).hexdigest()
    return out


def run_case(qsweep, root, fixture, name, breaks, commands, needles):
    c = Case(root, fixture, name)
    breaks(c)
    problems = []
    for what in commands:
        before = files_of(c.dir)
        lock = None
        if what == "run-locked":
            import fcntl
            lock = open(c.path("store.h5.lock"), "w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            p = subprocess.run(command(qsweep, c, what), cwd=c.dir, capture_output=True, text=True,
                               timeout=300)
        finally:
            if lock:
                lock.close()
        out = p.stdout + p.stderr
        wrong = []
        if p.returncode == 0:
            wrong.append("exit code 0")
        if what in ("run", "run-locked", "mpirun") and p.returncode != 2:
            wrong.append(f"exit code {p.returncode}, not 2 (refused before the sweep)")
        wrong += [f"no {n!r} in the message" for n in needles if n not in out]
        if "units planned" in out or " done on rank " in out:
            wrong.append("work started")
        after = files_of(c.dir)
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            wrong.append(f"files changed: {changed}")
        if what == "mpirun":
            wrong += [f"{b!r} in the output" for b in MPI_BANNERS if b in out]
            if out.count("qsweep: error:") != 1:
                wrong.append(f"{out.count('qsweep: error:')} error messages, not one")
        if wrong:
            problems.append(f"  {what}: {'; '.join(wrong)}\n    " + out.strip().replace("\n", "\n    "))
    return problems


def make_fixture(qsweep, root):
    """The good sweep every case copies: the model, the CoQA sample, and a store from a real run."""
    fixture = os.path.join(root, "fixture")
    os.makedirs(fixture)
    subprocess.run([qsweep, "make-model", "--preset", "tiny", "--tokenizer",
                    os.path.join(TOKENIZER_DIR, "tokenizer.json"), "--seed", "1",
                    "--out", os.path.join(fixture, "model")], check=True, capture_output=True)
    write(os.path.join(fixture, "model", "generation_config.json"),
          json.dumps({"bos_token_id": 128000, "eos_token_id": 128001}))
    shutil.copy(COQA, os.path.join(fixture, "coqa.json"))
    write(os.path.join(fixture, "job.yaml"), JOB)
    p = subprocess.run([qsweep, "run", os.path.join(fixture, "job.yaml")], cwd=fixture,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"the good sweep failed (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    return fixture


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    qsweep = os.path.join(os.path.abspath(sys.argv[1]), "qsweep")
    wanted = set(sys.argv[2:])
    unknown = wanted - {name for name, *_ in CASES}
    if unknown:
        sys.exit(f"unknown cases: {sorted(unknown)}")
    if not os.path.exists(os.path.join(TOKENIZER_DIR, "tokenizer.json")):
        sys.exit(f"no {TOKENIZER_DIR}/tokenizer.json: run scripts/setup.sh")
    root = tempfile.mkdtemp(prefix="qsweep-bad-inputs-")
    fixture = make_fixture(qsweep, root)
    failures = 0
    for name, breaks, commands, needles in CASES:
        if wanted and name not in wanted:
            continue
        problems = run_case(qsweep, root, fixture, name, breaks, commands, needles)
        print(f"{'FAIL' if problems else 'ok  '} {name} ({', '.join(commands)})", flush=True)
        for p in problems:
            print(p)
        failures += bool(problems)
    print(f"{len([c for c in CASES if not wanted or c[0] in wanted])} cases, {failures} failed")
    if failures:
        print(f"kept {root} for inspection")
        sys.exit(1)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
