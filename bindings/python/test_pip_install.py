#!/usr/bin/env python3
"""pip install of the checkout, as a user would do it, in a throw-away venv.

Usage: test_pip_install.py SOURCE_ROOT

Makes a virtual environment with the system's site packages (cffi, meson,
meson-python come from Debian: python3-cffi, python3-mesonpy), runs
``pip install --no-build-isolation --no-index SOURCE_ROOT`` in it (the
pyproject.toml / meson-python path; no network), then imports shoal from
the venv and writes and reads a document in a temp dir, and runs the
``shoal`` program the wheel installed.  Everything it makes is removed,
including the file meson-python writes into the checkout.
Prints "N passed, N failed"; exits non-zero on failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHECK = r"""
import os, sys, tempfile
import shoal
assert os.path.realpath(shoal.__file__).startswith(os.path.realpath(sys.prefix)), shoal.__file__
with tempfile.TemporaryDirectory() as d:
    r = shoal.Replica(os.path.join(d, "new", "replica"))
    doc = r.doc("items", "widget")
    doc["name"] = "Widget"
    doc.counter("stock").add(3)
    assert r.doc("items", "widget").to_dict() == {"name": "Widget", "stock": 3}
    r.close()
print("ok", shoal.__file__)
"""


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: test_pip_install.py SOURCE_ROOT\n")
        return 2
    src = os.path.realpath(argv[1])
    native = os.path.join(src, ".mesonpy-native-file.ini")
    native_existed = os.path.exists(native)
    passed = failed = 0
    env = dict(os.environ)
    env["PATH"] = "/usr/bin:/bin:" + env.get("PATH", "")
    env.pop("PYTHONPATH", None)  # the build tree's package must not be seen
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    tmp = tempfile.mkdtemp(prefix="shoal-pip.")
    try:
        venv = os.path.join(tmp, "venv")
        # --without-pip: Debian's pip (python3-pip) is seen through the system
        # site packages and installs into the venv; ensurepip is slow.
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages",
                        "--without-pip", venv],
                       check=True, env=env, timeout=120)
        vpy = os.path.join(venv, "bin", "python")
        start = time.monotonic()
        # optimization=0: this checks the packaging, not the optimiser, and
        # builds faster on a busy machine.
        p = subprocess.run([vpy, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                            "-q", "--config-settings=setup-args=-Doptimization=0", src],
                           env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        took = time.monotonic() - start
        if p.returncode == 0:
            passed += 1
            print(f"pip install: ok ({took:.1f} s)")
        else:
            failed += 1
            print(f"FAIL: pip install exited {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
            return 1
        p = subprocess.run([vpy, "-c", CHECK], env=env, cwd=tmp, capture_output=True,
                           text=True, timeout=120)
        if p.returncode == 0 and p.stdout.startswith("ok "):
            passed += 1
            print("import and put/get from the venv:", p.stdout.strip())
        else:
            failed += 1
            print(f"FAIL: import from the venv: {p.stdout}{p.stderr}")
        p = subprocess.run([os.path.join(venv, "bin", "shoal"), "--version"], env=env,
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0 and p.stdout.startswith("shoal "):
            passed += 1
            print("venv's shoal program:", p.stdout.strip())
        else:
            failed += 1
            print(f"FAIL: venv/bin/shoal --version: {p.returncode} {p.stdout}{p.stderr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not native_existed and os.path.exists(native):
            os.unlink(native)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
