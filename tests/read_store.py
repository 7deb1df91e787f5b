"""Reads a store written by test_store's PandasReadsTheStore with h5py and pandas only, the way
docs/results-schema.md tells users to, and checks what it finds. Exit code 0 = readable and right.
"""
import sys

import h5py
import pandas as pd


def table(f, group):
    """One pandas DataFrame from a group of equal-length 1-D columns."""
    g = f[group]
    return pd.DataFrame({
        name: g[name].asstr()[:] if h5py.check_string_dtype(g[name].dtype) else g[name][:]
        for name in g.keys()
    })


def main(path):
    with h5py.File(path, "r") as f:
        provenance = dict(f["provenance"].attrs)
        assert provenance["format"] == "qsweep-results", provenance
        assert provenance["name"] == "t", provenance["name"]

        samples = table(f, "configs/fp32/samples")
        assert len(samples) == 4, len(samples)
        assert list(samples["unit"].unique()) == ["fp32/coqa/0000"]
        assert samples["em"].sum() == 2.0, samples["em"]
        assert samples["prediction"][1] == "caf\u00e9 \u2603", samples["prediction"][1]
        assert samples["generation"][1] == " caf\u00e9 \u2603\n\nQ", samples["generation"][1]
        golds = samples["golds"][0].split("\x1f")
        assert golds == ["white", "a white kitten"], golds

        metrics = f["configs/bf16/metrics"].attrs
        assert abs(metrics["em"] - 0.5) < 1e-12 and metrics["em_delta_baseline"] == "fp32"

        bench = f["configs/fp32/bench"]
        assert list(bench["throughput_b4"][:]) == [100.0, 110.0, 120.0]
        assert bench.attrs["prefill_ms_median"] == 2.0
        assert bench.attrs["model_bytes"] == 1 << 20

        units = table(f, "units")
        counts = units["status"].value_counts().to_dict()
        assert counts == {"todo": 5, "done": 2, "failed": 1}, counts
        errors = table(f, "errors")
        assert list(errors["unit"]) == ["bf16/coqa/0001"], errors

        summary = table(f, "summary").set_index("config")
        assert list(summary.index) == ["fp32", "bf16"], summary.index
        assert summary.loc["bf16", "em"] == 0.5
        assert pd.isna(summary.loc["fp32", "em"])
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
