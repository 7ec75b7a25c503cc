#!/usr/bin/env python3
"""test/fuzz/mincorpus.py FUZZER CONTROL OUT [MAX]: pick a small corpus after
a libFuzzer merge (FUZZER -merge=1 -merge_control_file=CONTROL EMPTY DIRS...).

libFuzzer's -merge=1 keeps every input that adds a feature (edge counters,
value profiles): hundreds per target.  Its control file credits each edge
to the first input (smallest first) that reached it, so the inputs with a
credited edge already cover every edge; this measures each of them alone
(one libFuzzer merge step per input), then keeps a greedy set cover of the
edges: first the input that adds the most uncovered edges, the smaller file
on a tie, until every edge is covered or MAX (default 48) inputs are kept.
The kept inputs are copied into OUT (created; must not exist) under their
own base names.  scripts/fuzz.sh minimise runs it.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def parse(ctl):
    with open(ctl) as f:
        lines = f.read().splitlines()
    nfiles = int(lines[0])
    files = lines[2:2 + nfiles]
    cov = {}
    for line in lines[2 + nfiles:]:
        parts = line.split()
        if parts and parts[0] == "COV":
            cov[int(parts[1])] = set(int(x) for x in parts[2:])
    return files, cov


def alone(fuzzer, path, tmp):
    """The edges input path covers when it runs alone (one inner merge
    step of libFuzzer, recorded in a control file of its own)."""
    ctl = os.path.join(tmp, "ctl")
    with open(ctl, "w") as f:
        f.write("1\n0\n%s\n" % os.path.abspath(path))
    subprocess.run([fuzzer, "-merge_inner=1", "-merge_control_file=" + ctl, "-detect_leaks=0"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, cov = parse(ctl)
    return cov.get(0, set())


def main():
    fuzzer, ctl, out = sys.argv[1], sys.argv[2], sys.argv[3]
    cap = int(sys.argv[4]) if len(sys.argv) > 4 else 48
    files, credited = parse(ctl)
    cands = [i for i in credited if credited[i]]
    size = {i: os.path.getsize(files[i]) for i in cands}
    with tempfile.TemporaryDirectory() as tmp:
        cov = {i: alone(fuzzer, files[i], tmp) for i in cands}
    want = set().union(*cov.values()) if cov else set()
    have, keep = set(), []
    while have != want and len(keep) < cap:
        best = max(cov, key=lambda i: (len(cov[i] - have), -size[i]))
        if not cov[best] - have:
            break
        keep.append(best)
        have |= cov[best]
    os.makedirs(out)
    names = set()
    for i in keep:
        name = os.path.basename(files[i])
        if name in names:
            name = "%s-%d" % (name, i)
        names.add(name)
        shutil.copyfile(files[i], os.path.join(out, name))
    print("mincorpus: %d of %d inputs kept; they cover %d of the %d edges of the %d "
          "inputs libFuzzer credited" % (len(keep), len(files), len(have), len(want), len(cands)))


if __name__ == "__main__":
    main()
