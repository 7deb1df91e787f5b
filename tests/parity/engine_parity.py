#!/usr/bin/env python3
"""Engine parity and decode speed: qsweep against Hugging Face transformers, in the same run.

Runs on the GPU machine (transformers, torch, safetensors installed there):

  python3 tests/parity/engine_parity.py --qsweep build-gpu/qsweep \
      --tokenizer .cache/tokenizers/llama3/tokenizer.json --work /tmp/parity --out parity.json

For each made model (the tiny preset and the exact Llama-3.2-1B shape, random weights saved in
float32 so both programs start from identical values) it compares:
  * fp32: last-prompt-token logits, max |difference| / max |logit| < 1e-3, and identical greedy
    tokens for 64 steps from 10 prompts;
  * bf16 and fp16: top-1 agreement of last-token logits and of the greedy tokens (reported);
then times decode at batch 1 in bf16 for the 1B shape: `qsweep bench` against transformers'
generate() (128 new tokens, after warmup). Exits non-zero if an fp32 check fails.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

PROMPTS = [
    "The quick brown fox",
    "Once upon a time, in a barn near a farm house, there lived a little white kitten named Cotton.",
    "Q: What color was Cotton?\n\nA:",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "The capital of France is",
    "Llama 3.2 1B has 16 layers, 32 attention heads and",
    "Ünïcödé text: café, naïve, 中文, 😀 —",
    "1, 2, 3, 5, 8, 13,",
    "In 1905 Albert Einstein published four papers that",
    "CoQA is a large-scale dataset for building Conversational Question Answering systems.",
]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FP32_LOGIT_TOLERANCE = 1e-3   # max |diff| / max |logit|, from the issue


def run(cmd):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def qsweep_generate(args, model_dir, dtype, prompts_file, work, batch_size):
    logits_file = work / f"logits-{model_dir.name}-{dtype}-b{batch_size}.safetensors"
    out = run([args.qsweep, "generate", "--model", model_dir, "--prompts-file", prompts_file,
               "--max-new-tokens", args.steps, "--dtype", dtype, "--device", "cuda",
               "--batch-size", batch_size, "--json", "--out", logits_file])
    # Split on "\n" only: a generated text may hold U+2028 or U+0085, which splitlines() splits on.
    rows = [json.loads(line) for line in out.split("\n") if line.strip()]
    return rows, load_file(str(logits_file))["logits"]


@torch.inference_mode()
def hf_reference(model_dir, dtype, rows, steps):
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=DTYPES[dtype]).cuda().eval()
    eos = model.generation_config.eos_token_id
    logits, tokens = [], []
    for row in rows:
        ids = torch.tensor([row["prompt_ids"]], device="cuda")
        logits.append(model(ids).logits[0, -1].float().cpu())
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                             do_sample=False, pad_token_id=eos[0] if isinstance(eos, list) else eos)
        gen = out[0, ids.shape[1]:].tolist()
        eos_set = set(eos if isinstance(eos, list) else [eos])
        cut = next((i for i, t in enumerate(gen) if t in eos_set), len(gen))
        tokens.append(gen[:cut])
    del model
    torch.cuda.empty_cache()
    return torch.stack(logits), tokens


def compare(args, model_dir, dtype, prompts_file, work):
    rows, q_logits = qsweep_generate(args, model_dir, dtype, prompts_file, work, 1)
    batched_rows, _ = qsweep_generate(args, model_dir, dtype, prompts_file, work, len(PROMPTS))
    h_logits, h_tokens = hf_reference(model_dir, dtype, rows, args.steps)
    scale = h_logits.abs().max().item()
    same_tokens = [r["tokens"] == t for r, t in zip(rows, h_tokens)]
    token_agreement = sum(
        sum(a == b for a, b in zip(r["tokens"], t)) / max(1, max(len(r["tokens"]), len(t)))
        for r, t in zip(rows, h_tokens)) / len(rows)
    result = {
        "model": model_dir.name, "dtype": dtype,
        "max_abs_logit_diff": (q_logits - h_logits).abs().max().item(),
        "logit_scale": scale,
        "relative_logit_diff": (q_logits - h_logits).abs().max().item() / scale,
        "top1_agreement": (q_logits.argmax(-1) == h_logits.argmax(-1)).float().mean().item(),
        "prompts_with_identical_greedy_tokens": sum(same_tokens),
        "greedy_token_agreement": token_agreement,
        "batch_size_invariant": all(a["tokens"] == b["tokens"] for a, b in zip(rows, batched_rows)),
        "steps": args.steps, "prompts": len(rows),
    }
    if dtype == "fp32":
        result["pass"] = (result["relative_logit_diff"] < FP32_LOGIT_TOLERANCE
                          and all(same_tokens) and result["batch_size_invariant"])
    print(json.dumps(result), flush=True)
    return result


@torch.inference_mode()
def hf_decode_speed(model_dir, new_tokens=128, repeats=5):
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16).cuda().eval()
    ids = torch.tensor([[128000]], device="cuda")
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                  min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    for _ in range(2):
        model.generate(ids, **kwargs)
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, **kwargs)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000 / new_tokens)
    del model
    torch.cuda.empty_cache()
    return sorted(samples)[len(samples) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qsweep", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--work", default="/tmp/qsweep-parity")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--presets", default="tiny,llama-3.2-1b")
    p.add_argument("--speed-only", action="store_true", help="skip the parity checks")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prompts_file = work / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps(s) + "\n" for s in PROMPTS))

    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "results": []}
    for preset in args.presets.split(","):
        model_dir = work / preset
        if not (model_dir / "model.safetensors").exists():
            run([args.qsweep, "make-model", "--preset", preset, "--tokenizer", args.tokenizer,
                 "--seed", "1", "--dtype", "fp32", "--out", model_dir])
        for dtype in [] if args.speed_only else DTYPES:
            report["results"].append(compare(args, model_dir, dtype, prompts_file, work))
        if preset == "llama-3.2-1b":
            bench_file = work / "bench-1b-bf16.json"
            run([args.qsweep, "bench", "--model", model_dir, "--dtype", "bf16", "--device", "cuda",
                 "--batch-sizes", "1", "4", "8", "--out", bench_file])
            bench = json.loads(bench_file.read_text())
            q_ms = bench["stats"]["decode_ms_per_token"]["median"]
            hf_ms = hf_decode_speed(model_dir)
            report["decode_speed_1b_bf16_batch1"] = {
                "qsweep_ms_per_token": q_ms, "transformers_ms_per_token": hf_ms,
                "qsweep_tokens_per_s": 1000 / q_ms, "transformers_tokens_per_s": 1000 / hf_ms,
                "speedup": hf_ms / q_ms, "qsweep_bench": bench}
            print(json.dumps({k: v for k, v in report["decode_speed_1b_bf16_batch1"].items()
                              if k != "qsweep_bench"}), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    failed = [r for r in report["results"] if r.get("pass") is False]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
