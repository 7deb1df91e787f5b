#!/usr/bin/env python3
"""Compares the PTX of one CUDA source before and after a change, kernel by kernel, for
scripts/same_ptx.sh.

Two compiles of the same source differ in ways that are no change: virtual register numbers,
`.reg` declarations, `used_bytes_mask` pragmas, the names nvcc derives from the source's path
(anonymous namespaces, static shared variables) and, from one run of nvcc to the next, whether
a few fp32-route GEMVs read some shared-memory words again in a second load after a 16-byte
load of the same block has read them. Each kernel is put in a canonical form without these (a
load whose words an earlier load of the block read since the last shared store or barrier is
dropped, its registers replaced by the earlier ones), so that what differs after that is a
change of what the kernel computes or how.

  ptx_kernels.py BEFORE.ptx AFTER.ptx          exit 0: no kernel changed, added or removed
"""
import re
import sys

ENTRY = re.compile(r"^(?:\.visible |\.weak )?\.(?:entry|func)\s+(?:\([^)]*\)\s*)?(\S+?)\(")
REGISTER = re.compile(r"%(rd|r|fd|f|p|rs|h|hh|b)\d+")
ANONYMOUS = re.compile(r"(_GLOBAL__N__|_INTERNAL_)[0-9a-f]{8}_")
SHARED_LOAD = re.compile(
    r"^\s*ld\.shared\.(?:v[24]\.)?f32\s+\{?([^};]*?)\}?,\s*\[(%r\d+)(?:\+(-?\d+))?\];")
CLEARS_SHARED = re.compile(r"^\s*(st\.shared|bar\.|barrier)")


def raw_kernels(path):
    bodies, name = {}, None
    for line in open(path):
        line = ANONYMOUS.sub(r"\1", line)
        start = ENTRY.match(line)
        if start:
            name = start.group(1)
            bodies[name] = []
        stripped = line.strip()
        if name is not None and not stripped.startswith(".reg ") and \
                "used_bytes_mask" not in stripped:
            bodies[name].append(line)
    return bodies


def drop_repeated_loads(body):
    out, read, alias = [], {}, {}
    for line in body:
        if line.startswith("$") or CLEARS_SHARED.match(line):
            read = {}  # a label may be reached from elsewhere; a store or barrier changes words
        load = SHARED_LOAD.match(line)
        if load:
            regs = [r.strip() for r in load.group(1).split(",")]
            base, offset = load.group(2), int(load.group(3) or 0)
            earlier = [read.get((base, offset + 4 * i)) for i in range(len(regs))]
            if all(earlier):
                alias.update(zip(regs, earlier))
                continue
            read.update(((base, offset + 4 * i), r) for i, r in enumerate(regs))
        out.append(line)
    rename = lambda m: alias.get(m.group(0), m.group(0))
    return [re.sub(r"%[a-z]+\d+", rename, line) for line in out] if alias else out


def canonical(body):
    names = {}
    number = lambda m: names.setdefault(m.group(0), "%%%s_%d" % (m.group(1), len(names)))
    return [REGISTER.sub(number, line) for line in drop_repeated_loads(body)]


def main(before, after):
    a = {k: canonical(v) for k, v in raw_kernels(before).items()}
    b = {k: canonical(v) for k, v in raw_kernels(after).items()}
    added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    print("%d kernels: %d changed, %d added, %d removed"
          % (len(a), len(changed), len(added), len(removed)))
    for label, names in (("changed", changed), ("added", added), ("removed", removed)):
        for k in names[:20]:
            print("  %s %s" % (label, k))
        if len(names) > 20:
            print("  ... and %d more %s" % (len(names) - 20, label))
    return 1 if changed or added or removed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
