"""Print where, relative to the install prefix (argv[1]), this interpreter
looks for packages: the dist-/site-packages directory on sys.path under the
prefix with the fewest components, or nothing if there is none.

Needed on Debian: meson installs Python modules under
PREFIX/lib/python3/dist-packages, which Debian's python3 searches only for
PREFIX=/usr; for the default /usr/local it searches
/usr/local/lib/python3.X/dist-packages.
"""
import os
import sys

prefix = os.path.realpath(sys.argv[1])
best = None
for p in sys.path:
    if not p or not p.rstrip(os.sep).endswith(("dist-packages", "site-packages")):
        continue
    rp = os.path.realpath(p)
    if rp.startswith(prefix + os.sep):
        rel = os.path.relpath(rp, prefix)
        if best is None or rel.count(os.sep) < best.count(os.sep):
            best = rel
print(best or "")
