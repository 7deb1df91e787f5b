#!/usr/bin/env python3
"""Checks that `qsweep tokenize` gives the ids and text of Hugging Face `tokenizers`.

Strings: every CoQA story, question and answer, every lm-eval-style CoQA prompt (story, then the
Q/A turns so far, ending "A:"), and seeded random strings mixing ASCII, whitespace runs, newlines,
digits, punctuation, accents, CJK, emoji, RTL and special-token text. Each is encoded with
tokenizers.Tokenizer.from_file (add_special_tokens True and False) and with one
`qsweep tokenize --jsonl` process per mode; ids and decoded text must match, and qsweep's decode
must give the string back. Writes a JSON summary; exits 1 on any mismatch.

--self-check runs only the qsweep side (round trips), for machines without `tokenizers`.

  python3 tests/parity/tokenizer_parity.py --qsweep build/qsweep \
      --tokenizer .cache/tokenizers/llama3/tokenizer.json \
      --coqa data/coqa/coqa_dev_format_sample_10stories.json --n-random 300 --out parity.json
"""
import argparse
import json
import random
import subprocess
import sys

# Character classes the Llama-3 pre-tokenizer regex tells apart, plus text that looks like (or is)
# an added token. U+0085 and U+FEFF probe where regex engines disagree on \s.
POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\n",
    "\r\n", "\t", " \n ", ".,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`", "éèàçüößñÅØ", "中文字符日本語한국어",
    "😀🎉👍🏽❤️‍🔥", "مرحبا שלום", "'s 't 're 've 'll 'd 'M", "\u00a0\u2003\u3000\u0085",
    "<|begin_of_text|>", "<|eot_id|>", "<|", "|>", "\u200b\ufeff", "ǅǈ", "١٢٣", "Ⅻ½²", "n't ",
]


def coqa_strings(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    stories = data["data"] if isinstance(data, dict) else data
    out = []
    for story in stories:
        questions = [q["input_text"] for q in story["questions"]]
        answers = [a["input_text"] for a in story["answers"]]
        out.append(story["story"])
        out += questions + answers
        # lm-eval's CoQA doc_to_text: the story, then every earlier turn, then the question.
        prompt = story["story"] + "\n\n"
        for question, answer in zip(questions, answers):
            out.append(prompt + f"Q: {question}\n\nA:")
            prompt += f"Q: {question}\n\nA: {answer}\n\n"
    return out


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choice(POOLS)
            parts.append(rng.choice(pool) * rng.choice([1, 1, 1, 2, 5]))
        out.append("".join(parts))
    return out


def run_qsweep(qsweep, tokenizer, flags, lines):
    """One qsweep process for all lines; returns one parsed JSON value per input line."""
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = subprocess.run([qsweep, "tokenize", "--tokenizer", tokenizer, "--jsonl", *flags],
                            input=stdin.encode("utf-8"), capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"qsweep tokenize {' '.join(flags)} failed: {result.stderr.decode(errors='replace')}")
    # Split on "\n" only: decoded text may hold U+2028 or U+0085, which splitlines() splits on.
    values = [json.loads(l) for l in result.stdout.decode("utf-8").split("\n")[:-1]]
    if len(values) != len(lines):
        sys.exit(f"qsweep tokenize {' '.join(flags)} returned {len(values)} lines for {len(lines)}")
    return values


def qsweep_results(args, strings):
    ids_special = run_qsweep(args.qsweep, args.tokenizer, [], strings)
    ids_plain = run_qsweep(args.qsweep, args.tokenizer, ["--no-bos"], strings)
    return {
        "ids_special": ids_special,
        "ids_plain": ids_plain,
        "decoded": run_qsweep(args.qsweep, args.tokenizer, ["--decode"], ids_special),
        "decoded_keep": run_qsweep(args.qsweep, args.tokenizer, ["--decode", "--keep-special"],
                                   ids_plain),
    }


def hf_results(tokenizer_path, strings):
    try:
        from tokenizers import Tokenizer  # only the full check needs it
    except ImportError:
        sys.exit("the tokenizers package is not importable: pip install tokenizers, "
                 "or pass --self-check for qsweep round trips only")

    tok = Tokenizer.from_file(tokenizer_path)
    ids_special = [e.ids for e in tok.encode_batch(strings, add_special_tokens=True)]
    ids_plain = [e.ids for e in tok.encode_batch(strings, add_special_tokens=False)]
    decoded = tok.decode_batch(ids_special, skip_special_tokens=True)
    return {"ids_special": ids_special, "ids_plain": ids_plain, "decoded": decoded}


def compare(strings, ours, theirs):
    """Mismatch records; `theirs` None means round trips only."""
    mismatches = []
    for i, s in enumerate(strings):
        checks = [("round trip", s, ours["decoded_keep"][i])]
        if theirs is not None:
            checks += [(key, theirs[key][i], ours[key][i])
                       for key in ("ids_special", "ids_plain", "decoded")]
        for what, expected, got in checks:
            if expected != got:
                mismatches.append({"check": what, "string": s, "expected": expected, "got": got})
    return mismatches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qsweep", required=True, help="the qsweep executable")
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json")
    parser.add_argument("--coqa", required=True, help="CoQA JSON (the coqa-dev-v1.0.json schema)")
    parser.add_argument("--n-random", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", required=True, help="JSON summary to write")
    parser.add_argument("--self-check", action="store_true",
                        help="qsweep round trips only, without the tokenizers package")
    parser.add_argument("--show", type=int, default=5, help="mismatches to print")
    args = parser.parse_args()

    strings = coqa_strings(args.coqa) + random_strings(args.n_random, args.seed)
    ours = qsweep_results(args, strings)
    theirs = None if args.self_check else hf_results(args.tokenizer, strings)
    mismatches = compare(strings, ours, theirs)

    summary = {
        "mode": "self-check" if args.self_check else "tokenizers",
        "tokenizer": args.tokenizer,
        "strings": len(strings),
        "tokens_special": sum(len(ids) for ids in ours["ids_special"]),
        "mismatches": len(mismatches),
        "mismatching_strings": len({m["string"] for m in mismatches}),
        "first_mismatches": mismatches[:50],
        "passed": not mismatches,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    for m in mismatches[:args.show]:
        print(f"MISMATCH ({m['check']}) string {m['string']!r}\n  expected {m['expected']!r}\n"
              f"  got      {m['got']!r}")
    print(f"{summary['mode']}: {len(strings)} strings, {summary['tokens_special']} tokens, "
          f"{len(mismatches)} mismatches -> {args.out}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
