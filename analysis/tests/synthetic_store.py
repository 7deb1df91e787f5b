"""A 10-config store with realistic, made-up scores, for looking at the report's figures where
a demo run cannot help (its random-weight model scores 0 everywhere): sizes and scores that
coincide (bf16 and fp16, the 4-bit variants), clear and unclear differences, seven CoQA domains.

    /usr/bin/python3 analysis/tests/synthetic_store.py REAL_STORE.h5 OUT.h5

Made from a store written by a real `qsweep run` (its layout, provenance and benchmark columns);
every config, sample, metric and unit in it is replaced. The statistics are normal
approximations, good enough for figures and nothing else.
"""
import shutil
import sys

import h5py
import numpy as np

# name, bytes, bits per weight, F1 the samples are drawn around, KL from the baseline
CONFIGS = [
    ("fp16", 2.47e9, 16.0, 0.720, 0.0),
    ("bf16", 2.47e9, 16.0, 0.719, 0.0004),
    ("int8", 1.40e9, 8.0, 0.715, 0.008),
    ("nf4_dq", 1.03e9, 4.13, 0.675, 0.24),
    ("nf4", 1.05e9, 4.5, 0.672, 0.25),
    ("fp4", 1.05e9, 4.5, 0.610, 0.36),
    ("rtn4_g128", 1.10e9, 4.25, 0.650, 0.28),
    ("gptq4_g128", 1.10e9, 4.25, 0.690, 0.127),
    ("awq4_g128", 1.10e9, 4.25, 0.683, 0.200),
    ("rtn3_g128", 0.90e9, 3.25, 0.480, 0.58),
]
DOMAINS = ["mctest", "gutenberg", "race", "cnn", "wikipedia", "reddit", "science"]
DOMAIN_EFFECT = [0.05, -0.06, 0.0, 0.03, 0.06, -0.08, 0.0]
SAMPLES = 350


def strings(values):
    return np.array(values, dtype=object)


def replace(group, name, values, string=False):
    if name in group:
        del group[name]
    if string:
        group.create_dataset(name, data=strings(values), dtype=h5py.string_dtype())
    else:
        group.create_dataset(name, data=np.asarray(values))


def summary(x):
    n, mean = len(x), float(np.mean(x))
    stderr = float(np.std(x, ddof=1) / np.sqrt(n))
    return n, mean, stderr, (mean - 1.97 * stderr, mean + 1.97 * stderr)


def set_metrics(attrs, score, x, base):
    n, mean, stderr, (lo, hi) = summary(x)
    attrs.update({score: mean, f"{score}_n": n, f"{score}_stderr": stderr,
                  f"{score}_bca95_lo": lo, f"{score}_bca95_hi": hi,
                  f"{score}_t95_lo": lo, f"{score}_t95_hi": hi})
    if base is None:
        return
    d = x - base
    n, mean, stderr, (lo, hi) = summary(d)
    z = abs(mean) / stderr if stderr > 0 else 0.0
    p = float(np.exp(-0.717 * z - 0.416 * z * z))  # two-sided normal tail, close enough
    attrs.update({f"{score}_delta": mean, f"{score}_delta_n": n, f"{score}_delta_p": min(1.0, p),
                  f"{score}_delta_bca95_lo": lo, f"{score}_delta_bca95_hi": hi,
                  f"{score}_delta_baseline": CONFIGS[0][0]})


def read_tree(group):
    """A group's attributes, datasets and subgroups in memory."""
    return {"attrs": dict(group.attrs),
            "items": {k: read_tree(v) if isinstance(v, h5py.Group) else (v[:], v.dtype)
                      for k, v in group.items()}}


def write_tree(parent, name, tree):
    g = parent.create_group(name)
    g.attrs.update(tree["attrs"])
    for key, item in tree["items"].items():
        if isinstance(item, dict):
            write_tree(g, key, item)
        else:
            data, dtype = item
            g.create_dataset(key, data=data, dtype=dtype)
    return g


def make(src, dst, seed=0):
    shutil.copy(src, dst)
    rng = np.random.default_rng(seed)
    sources = [DOMAINS[i % len(DOMAINS)] for i in range(SAMPLES)]
    effect = np.array([DOMAIN_EFFECT[i % len(DOMAINS)] for i in range(SAMPLES)])
    difficulty = rng.normal(0, 0.25, SAMPLES)  # shared by every config: paired samples
    with h5py.File(dst, "r+") as f:
        first = sorted(f["configs"], key=lambda c: f["configs"][c].attrs["index"])[0]
        template = read_tree(f["configs"][first])
        for name in list(f["configs"]):
            del f["configs"][name]
        base = {}
        for index, (name, size, bits, target, kl) in enumerate(CONFIGS):
            g = write_tree(f["configs"], name, template)
            g.attrs["index"] = index
            g.attrs["fingerprint"] = f"synthetic={name}\n"
            f1 = np.clip(target + effect + difficulty + rng.normal(0, 0.08, SAMPLES), 0, 1)
            em = (f1 > 0.85).astype(float)
            s = g["samples"]
            replace(s, "id", [f"story{i:04d}" for i in range(SAMPLES)], string=True)
            replace(s, "source", sources, string=True)
            replace(s, "unit", [f"{name}/coqa/{i // 50:04d}" for i in range(SAMPLES)], string=True)
            for column in ("prediction", "generation", "prompt_sha256", "stop_reason", "golds"):
                if column in s:  # generation: not in stores written before qsweep kept it
                    replace(s, column, [s[column].asstr()[0]] * SAMPLES, string=True)
            for column, value in (("turn", 1), ("prompt_tokens", 300), ("generated_tokens", 5)):
                replace(s, column, np.full(SAMPLES, value, dtype=s[column].dtype))
            replace(s, "f1", f1)
            replace(s, "em", em)
            if index == 0:  # the baseline, compared with itself as qsweep does
                base = {"em": em, "f1": f1}
            m = g["metrics"].attrs
            m.clear()
            set_metrics(m, "em", em, base["em"])
            set_metrics(m, "f1", f1, base["f1"])
            b = g["bench"]
            b.attrs["model_bytes"] = int(size)
            b.attrs["peak_memory_bytes"] = int(size * 1.25 + 3e8)
            b.attrs["bits_per_weight"] = bits
            speed = size / CONFIGS[0][1]
            for column in list(b):
                values = b[column][:] * (speed if "ms" in column else 1 / speed)
                replace(b, column, values)
            g["sanity"].attrs["perplexity"] = 9.8 * np.exp(kl)
            g["sanity"].attrs["kl_vs_baseline"] = kl
        keys, configs, kinds = [], [], []
        for name, *_ in CONFIGS:
            for i in range(SAMPLES // 50):
                keys.append(f"{name}/coqa/{i:04d}"), configs.append(name), kinds.append("coqa")
            for kind in ("sanity", "bench"):
                keys.append(f"{name}/{kind}"), configs.append(name), kinds.append(kind)
        units = f["units"]
        n = len(keys)
        for column, values in (("key", keys), ("config", configs), ("kind", kinds),
                               ("status", ["done"] * n), ("host", ["synthetic"] * n),
                               ("finished_at", ["2026-01-01T00:00:00Z"] * n)):
            replace(units, column, values, string=True)
        replace(units, "rank", np.zeros(n, dtype=units["rank"].dtype))
        replace(units, "seconds", np.full(n, 10.0))
        errors = f["errors"]
        for column in list(errors):
            data = errors[column]
            replace(errors, column, [] if not h5py.check_string_dtype(data.dtype)
                    else strings([]), string=h5py.check_string_dtype(data.dtype) is not None)
        f["provenance"].attrs["baseline"] = CONFIGS[0][0]
        f["provenance"].attrs["name"] = "synthetic"
        f["provenance"].attrs["spec_text"] = (
            "# synthetic store (analysis/tests/synthetic_store.py)\n"
            "compare:\n  - [rtn4_g128, gptq4_g128]\n  - [fp16, nf4_dq]\n")


if __name__ == "__main__":
    make(sys.argv[1], sys.argv[2])
