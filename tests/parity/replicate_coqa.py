#!/usr/bin/env python3
"""Writes a CoQA file of N stories by repeating the stories of SRC with fresh ids.

A stand-in with the size of the real dev set (500 stories) for timing evaluation where the
real coqa-dev-v1.0.json cannot be downloaded; its scores mean nothing beyond that.

  python3 tests/parity/replicate_coqa.py data/coqa/coqa_dev_format_sample_10stories.json 500 OUT.json
"""
import json
import sys

src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = json.load(open(src))
stories = data["data"] if isinstance(data, dict) else data
copies = []
for i in range(n):
    story = dict(stories[i % len(stories)])
    story["id"] = f"{story['id']}-copy{i:04d}"
    copies.append(story)
json.dump({"version": "1.0", "data": copies}, open(out, "w"))
print(f"{out}: {n} stories from {len(stories)} in {src}")
