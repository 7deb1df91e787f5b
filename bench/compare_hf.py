#!/usr/bin/env python3
"""qsweep against Hugging Face transformers on the same made model directory, in one run.

Runs on the GPU machine (PyTorch, transformers; bitsandbytes optional):

  python3 bench/compare_hf.py --qsweep build-gpu/qsweep --model /tmp/m1b \\
      --coqa data/coqa/coqa_dev_format_sample_10stories.json --work /tmp/compare \\
      --out compare.json --markdown compare.md

For each config (bf16 and fp16 on the model directory; with bitsandbytes importable also the
NF4 + double quant and LLM.int8 checkpoints that `qsweep quantize` writes, which transformers
loads as pre-quantized bitsandbytes models) it measures, on both sides:
  * prefill: a --prefill-tokens random prompt, batch 1, logits of the last token;
  * decode ms/token at batch 1 and tokens/s at each --batch-sizes, decode steps only: qsweep
    times the steps (`qsweep bench`); transformers' generate() is timed for n + 1 and for 1 new
    tokens and the difference divided by n, which leaves out its prefill and set-up the same way;
  * CoQA-like samples: the first --coqa-stories stories of the shipped CoQA data through
    `qsweep eval` and through generate() (greedy, the same prompts, batch, stop string and token
    limit), generated tokens/s with loading excluded.
The device's copy bandwidth (device-to-device copy of a 1 GiB buffer) and matmul rate (8192^3
GEMM per compute dtype) are measured here in the same run with torch, and decode and prefill are
given as fractions of them: bandwidth = bytes a decode step reads (qsweep's count for the same
checkpoint: weights, norms, gathered embedding rows, KV cache) / step time; prefill rate = its
FLOPs (qsweep's count) / prefill time.

Prints a markdown ratio table and writes JSON (rewritten after every config, so a run cut short
keeps what it finished). Without torch (Debian's python3 where the CPU tests run) only the pure
functions below import; bench/test_compare_hf.py exercises them with made-up numbers.
"""
import argparse
import hashlib
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import torch
except ImportError:  # the CPU test machine: the table logic is still importable
    torch = None

COPY_BYTES = 1 << 30
MATMUL_SIZE = 8192
STOP = "\nQ:"   # lm-eval's coqa `until`, as qsweep eval uses it
BNB_CONFIGS = {"nf4_dq_fp16": "configs/quant/nf4_dq_fp16.yaml",
               "int8_fp16": "configs/quant/int8_fp16.yaml"}


# ---- pure parts: prompts, figures, ratios, the table (no torch) -------------------------------

def median(samples):
    return statistics.median(samples) if samples else None


def ratio(numerator, denominator):
    """numerator / denominator, None where either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def coqa_prompts(data, stories):
    """(story id, prompt) of the last turn of each of the first `stories` stories, the prompt
    qsweep's lm_eval mode builds (src/eval/coqa.cpp coqa_prompt)."""
    out = []
    for story in data["data"][:stories]:
        questions = [q["input_text"] for q in story["questions"]]
        answers = [a["input_text"] for a in story["answers"]]
        prompt = story["story"] + "\n\n"
        for q, a in zip(questions[:-1], answers[:-1]):
            prompt += f"Q: {q}\n\nA: {a}\n\n"
        prompt += f"Q: {questions[-1]}\n\nA:"
        out.append((story["id"], prompt))
    return out


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_jsonl(path):
    """One JSON value per line. Split at "\n" only: str.splitlines() also splits at U+0085 and
    U+2028, which a generated answer may hold unescaped inside a JSON string."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def parse_eval_seconds(log):
    """Samples and seconds from `qsweep eval`'s "N samples in X s" line (loading excluded)."""
    m = re.search(r"(\d+) samples in ([0-9.]+) s", log)
    if not m:
        raise ValueError("qsweep eval printed no 'N samples in X s' line:\n" + log[-2000:])
    return int(m.group(1)), float(m.group(2))


def side_figures(side, decode_bytes_per_step, prefill_flops, copy_gb_s, matmul_tflop_s):
    """The figures of one side (qsweep or transformers) of one config, from its raw samples:
    medians, and decode and prefill as fractions of the yardsticks measured in the same run."""
    decode_ms = median(side.get("decode_ms_per_token", []))
    prefill_ms = median(side.get("prefill_ms", []))
    bandwidth = ratio(decode_bytes_per_step, decode_ms * 1e6) if decode_ms else None
    prefill_rate = ratio(prefill_flops, prefill_ms * 1e9) if prefill_ms else None
    coqa = side.get("coqa") or {}
    return {
        "decode_ms_per_token": decode_ms,
        "decode_gb_s": bandwidth,
        "decode_fraction_of_copy_bandwidth": ratio(bandwidth, copy_gb_s),
        "prefill_ms": prefill_ms,
        "prefill_tflop_s": prefill_rate,
        "prefill_fraction_of_matmul_rate": ratio(prefill_rate, matmul_tflop_s),
        "throughput_tokens_per_s": {int(b): median(s) for b, s in
                                    side.get("throughput_tokens_per_s", {}).items()},
        "coqa_tokens_per_s": ratio(coqa.get("generated_tokens"), coqa.get("seconds")),
    }


def config_figures(entry, yardsticks):
    """Both sides of one config entry of the JSON, with qsweep's byte and FLOP counts for the
    checkpoint (the same for both: the same weights in the same storage)."""
    copy = median(yardsticks["copy_bandwidth_gb_s"])
    matmul = median(yardsticks["matmul_tflop_s"][entry["compute_dtype"]])
    counts = (entry["decode_bytes_per_step"], entry["prefill_flops"], copy, matmul)
    return {side: side_figures(entry[side], *counts) for side in ("qsweep", "transformers")
            if side in entry}


def fmt(value, digits):
    return "—" if value is None else f"{value:,.{digits}f}"


def pct(fraction):
    return "—" if fraction is None else f"{100 * fraction:.1f} %"


def times(value):
    return "—" if value is None else f"{value:.2f}x"


def table_rows(entry, yardsticks):
    """[measure, qsweep, transformers, qsweep's advantage] for one config. The advantage is a
    speed ratio (>1: qsweep faster): transformers' time / qsweep's, or qsweep's rate / theirs."""
    f = config_figures(entry, yardsticks)
    q, h = f.get("qsweep", {}), f.get("transformers", {})
    get = lambda side, key: side.get(key)
    rows = [
        ["decode ms/token (b1)", fmt(get(q, "decode_ms_per_token"), 3),
         fmt(get(h, "decode_ms_per_token"), 3),
         times(ratio(get(h, "decode_ms_per_token"), get(q, "decode_ms_per_token")))],
        ["decode % of copy bandwidth (b1)", pct(get(q, "decode_fraction_of_copy_bandwidth")),
         pct(get(h, "decode_fraction_of_copy_bandwidth")), ""],
        ["prefill ms", fmt(get(q, "prefill_ms"), 2), fmt(get(h, "prefill_ms"), 2),
         times(ratio(get(h, "prefill_ms"), get(q, "prefill_ms")))],
        ["prefill % of matmul rate", pct(get(q, "prefill_fraction_of_matmul_rate")),
         pct(get(h, "prefill_fraction_of_matmul_rate")), ""],
    ]
    batches = sorted(set(q.get("throughput_tokens_per_s", {})) |
                     set(h.get("throughput_tokens_per_s", {})))
    for b in batches:
        qt = q.get("throughput_tokens_per_s", {}).get(b)
        ht = h.get("throughput_tokens_per_s", {}).get(b)
        rows.append([f"tokens/s b{b}", fmt(qt, 0), fmt(ht, 0), times(ratio(qt, ht))])
    qc, hc = get(q, "coqa_tokens_per_s"), get(h, "coqa_tokens_per_s")
    rows.append(["CoQA samples, generated tokens/s", fmt(qc, 0), fmt(hc, 0), times(ratio(qc, hc))])
    return rows


def markdown(report):
    """The ratio table of every config, with the run's yardsticks and settings."""
    y = report["yardsticks"]
    lines = [f"GPU {report.get('gpu', '?')}; copy bandwidth {fmt(median(y['copy_bandwidth_gb_s']), 0)}"
             f" GB/s (read + written), matmul " +
             ", ".join(f"{d} {fmt(median(s), 1)} TFLOP/s" for d, s in y["matmul_tflop_s"].items()) +
             f"; measured in this run. Settings: {json.dumps(report.get('settings', {}))}", ""]
    for entry in report["configs"]:
        lines += [f"### {entry['config']}", "",
                  "| measure | qsweep | transformers | qsweep / transformers |",
                  "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in table_rows(entry, y)]
        if entry.get("transformers_error"):
            lines += ["", f"transformers failed: {entry['transformers_error']}"]
        lines.append("")
    for name, error in report.get("failed", {}).items():
        lines += [f"### {name}", "", f"qsweep failed, not compared: {error.splitlines()[0]}", ""]
    return "\n".join(lines)


# ---- measurement (GPU) --------------------------------------------------------------------------

def run(cmd):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def torch_dtype(name):
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def cuda_ms(fn):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def repeat(args, fn):
    for _ in range(args.warmup):
        fn()
    return [fn() for _ in range(args.repeats)]


@torch.inference_mode() if torch else (lambda f: f)
def yardsticks(args, dtypes):
    src = torch.ones(COPY_BYTES, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy = [2 * COPY_BYTES / (ms * 1e6) for ms in repeat(args, lambda: cuda_ms(lambda: dst.copy_(src)))]
    del src, dst
    matmul = {}
    for d in dtypes:
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device="cuda", dtype=torch_dtype(d))
        b = torch.randn_like(a)
        c = torch.empty_like(a)
        flops = 2.0 * MATMUL_SIZE ** 3
        matmul[d] = [flops / (ms * 1e9) for ms in
                     repeat(args, lambda: cuda_ms(lambda: torch.mm(a, b, out=c)))]
        del a, b, c
    torch.cuda.empty_cache()
    return {"copy_bandwidth_gb_s": copy, "copy_bytes": COPY_BYTES,
            "matmul_tflop_s": matmul, "matmul_size": MATMUL_SIZE}


def qsweep_side(args, checkpoint, dtype, work, name):
    out = work / f"qsweep-bench-{name}.json"
    run([args.qsweep, "bench", "--model", checkpoint, "--dtype", dtype, "--device", "cuda",
         "--prefill-tokens", args.prefill_tokens, "--decode-tokens", args.decode_tokens,
         "--throughput-prompt-tokens", args.prompt_tokens, "--batch-sizes", *args.batch_sizes,
         "--warmup", args.warmup, "--repeats", args.repeats, "--out", out])
    bench = json.loads(out.read_text())
    coqa = qsweep_coqa(args.qsweep, checkpoint, args.coqa, args.coqa_stories, dtype, "cuda",
                       args.coqa_batch_size, args.max_new_tokens, work / f"qsweep-eval-{name}")
    return bench, coqa


def qsweep_coqa(qsweep, checkpoint, coqa, stories, dtype, device, batch_size, max_new_tokens, out):
    """`qsweep eval` on the first `stories` stories: samples, seconds (loading excluded),
    generated tokens and each story's prompt hash, read from the lm-eval per-sample records it
    writes under `out`."""
    log = run([qsweep, "eval", "--model", checkpoint, "--coqa", coqa, "--limit", stories,
               "--dtype", dtype, "--device", device, "--batch-size", batch_size,
               "--max-new-tokens", max_new_tokens, "--out", out, "--log-samples"])
    n, seconds = parse_eval_seconds(log)
    files = sorted(Path(out).glob("*/samples_coqa_*.jsonl"))
    if not files:
        raise RuntimeError(f"qsweep eval wrote no samples_coqa_*.jsonl under {out}")
    records = read_jsonl(files[-1])
    return {"samples": n, "seconds": seconds,
            "generated_tokens": sum(r["qsweep"]["generated_tokens"] for r in records),
            "prompt_sha256": {r["doc"]["id"]: r["prompt_hash"] for r in records}}


def generate_kwargs(model, new_tokens, exact):
    eos = model.generation_config.eos_token_id
    pad = eos[0] if isinstance(eos, list) else eos
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, num_beams=1, pad_token_id=pad)
    if exact:
        kwargs["min_new_tokens"] = new_tokens
    return kwargs


def timed_generate(model, ids, new_tokens):
    mask = torch.ones_like(ids)
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(ids, attention_mask=mask, **generate_kwargs(model, new_tokens, True))
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000


def decode_only_ms(model, ids, steps):
    """generate() of steps + 1 new tokens less generate() of 1: the decode steps alone."""
    return timed_generate(model, ids, steps + 1) - timed_generate(model, ids, 1)


def random_ids(vocab, batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(vocab, (batch, length), generator=g).cuda()


def load_transformers(checkpoint, dtype):
    """The checkpoint in transformers with SDPA attention, on the GPU. A bitsandbytes checkpoint
    is placed by device_map (it cannot be moved after loading); that needs accelerate."""
    from transformers import AutoModelForCausalLM
    kwargs = dict(torch_dtype=torch_dtype(dtype), attn_implementation="sdpa")
    try:
        import accelerate  # noqa: F401
        return AutoModelForCausalLM.from_pretrained(checkpoint, device_map="cuda", **kwargs).eval()
    except ImportError:
        return AutoModelForCausalLM.from_pretrained(checkpoint, **kwargs).cuda().eval()


def load_tokenizer(model_dir, pad_id):
    """The made model's tokenizer (`qsweep quantize` output may not carry one), padding left."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.convert_ids_to_tokens(pad_id)
    return tok


@torch.inference_mode() if torch else (lambda f: f)
def transformers_side(args, checkpoint, dtype, prompts):
    model = load_transformers(checkpoint, dtype)
    vocab = model.config.vocab_size
    steps = args.decode_tokens
    side = {}
    long_prompt = random_ids(vocab, 1, args.prefill_tokens, 0)
    try:  # transformers >= 4.45 computes the logits of the last token only, as qsweep does
        forward = lambda: model(long_prompt, use_cache=True, logits_to_keep=1)
        forward()
    except TypeError:
        forward = lambda: model(long_prompt, use_cache=True)
    side["prefill_ms"] = repeat(args, lambda: cuda_ms(forward))
    one = random_ids(vocab, 1, 1, 1)
    side["decode_ms_per_token"] = [ms / steps for ms in
                                   repeat(args, lambda: decode_only_ms(model, one, steps))]
    side["throughput_tokens_per_s"] = {}
    for b in args.batch_sizes:
        ids = random_ids(vocab, b, args.prompt_tokens, 2 + b)
        side["throughput_tokens_per_s"][str(b)] = [
            1000 * b * steps / ms for ms in repeat(args, lambda: decode_only_ms(model, ids, steps))]
    pad = generate_kwargs(model, 1, False)["pad_token_id"]
    side["coqa"] = transformers_coqa(args, model, load_tokenizer(args.model, pad), prompts)
    del model
    torch.cuda.empty_cache()
    return side


def transformers_coqa(args, model, tok, prompts):
    """The CoQA prompts through generate() as qsweep eval runs them: greedy, left padding, the
    same batch size, stop string and token limit; tokens counted up to EOS."""
    kwargs = generate_kwargs(model, args.max_new_tokens, False)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    texts = [p for _, p in prompts]
    generated = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(texts), args.coqa_batch_size):
        batch = tok(texts[i:i + args.coqa_batch_size], return_tensors="pt", padding=True,
                    add_special_tokens=False).to("cuda")
        out = model.generate(**batch, stop_strings=[STOP], tokenizer=tok, **kwargs)
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            generated += next((k for k, t in enumerate(row) if t in eos), len(row))
    torch.cuda.synchronize()
    return {"samples": len(texts), "seconds": time.perf_counter() - start,
            "generated_tokens": generated}


def configs_to_run(args):
    configs = [(d, args.model, d, d) for d in args.dtypes]
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        print("bitsandbytes is not importable: NF4 and int8 configs skipped", flush=True)
        return configs
    work = Path(args.work)
    for name, preset in BNB_CONFIGS.items():
        if args.skip_bnb:
            break
        checkpoint = work / f"checkpoint-{name}"
        try:
            if not (checkpoint / "config.json").exists():
                run([args.qsweep, "quantize", "--model", args.model, "--config", preset,
                     "--out", checkpoint])
            configs.append((name, checkpoint, "fp16", "fp16"))
        except RuntimeError as e:
            print(f"{name}: not compared, qsweep quantize failed: {e}", flush=True)
    return configs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qsweep", required=True)
    p.add_argument("--model", required=True, help="a made model directory (qsweep make-model)")
    p.add_argument("--coqa", default="data/coqa/coqa_dev_format_sample_10stories.json")
    p.add_argument("--work", default="/tmp/qsweep-compare")
    p.add_argument("--out", required=True, help="JSON results")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--prefill-tokens", type=int, default=512)
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt of the throughput runs")
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--coqa-stories", type=int, default=10)
    p.add_argument("--coqa-batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--skip-bnb", action="store_true")
    args = p.parse_args()
    if torch is None or not torch.cuda.is_available():
        sys.exit("compare_hf.py measures on a GPU: torch with CUDA is needed")
    import transformers
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prompts = coqa_prompts(json.loads(Path(args.coqa).read_text()), args.coqa_stories)
    configs = configs_to_run(args)
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "transformers": transformers.__version__, "model": str(args.model),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(sys.argv),
              "settings": {k: getattr(args, k) for k in
                           ("batch_sizes", "prefill_tokens", "prompt_tokens", "decode_tokens",
                            "warmup", "repeats", "coqa_stories", "coqa_batch_size",
                            "max_new_tokens")},
              "yardsticks": yardsticks(args, sorted({c[3] for c in configs})), "configs": []}
    for name, checkpoint, dtype, compute in configs:
        try:
            bench, coqa = qsweep_side(args, checkpoint, dtype, work, name)
        except RuntimeError as e:  # a config qsweep cannot run is reported, the others go on
            report.setdefault("failed", {})[name] = str(e)
            print(f"{name}: qsweep failed: {e}", flush=True)
            continue
        mismatched = [i for i, text in prompts if coqa["prompt_sha256"].get(i) != sha256(text)]
        entry = {"config": name, "checkpoint": str(checkpoint), "dtype": dtype,
                 "compute_dtype": compute, "decode_bytes_per_step": bench["decode_bytes_per_step"],
                 "prefill_flops": bench["prefill_flops"], "qsweep_bench": bench,
                 "prompts_differing_from_qsweep": mismatched,
                 "qsweep": {"prefill_ms": bench["prefill_ms"],
                            "decode_ms_per_token": bench["decode_ms_per_token"],
                            "throughput_tokens_per_s": bench["throughput_tokens_per_s"],
                            "coqa": coqa}}
        try:
            entry["transformers"] = transformers_side(args, checkpoint, dtype, prompts)
        except Exception as e:  # transformers' own failure (e.g. bnb on this GPU) keeps the rest
            entry["transformers_error"] = f"{type(e).__name__}: {e}"
            print(f"{name}: transformers failed: {entry['transformers_error']}", flush=True)
            torch.cuda.empty_cache()
        entry["figures"] = config_figures(entry, report["yardsticks"])
        report["configs"].append(entry)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(markdown({**report, "configs": [entry]}), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    print(text)
    if report.get("failed"):  # a comparison with a side missing is no result: the caller must see it
        sys.exit(f"compare_hf.py: qsweep failed on {', '.join(report['failed'])}")


if __name__ == "__main__":
    main()
