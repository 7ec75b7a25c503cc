"""Importing shoal when its compiled extension is missing or broken: the
ImportError says which, and keeps the loader's own message."""
import os
import shutil
import subprocess
import sys

import shoal

PKG_FILES = ("__init__.py", "_api.py", "_errors.py")


def _fake_package(tmp_path, extension_source):
    """A copy of the package's .py files with a stand-in for the extension
    (None: no extension at all)."""
    src = os.path.dirname(shoal.__file__)
    pkg = tmp_path / "shoal"
    pkg.mkdir()
    for name in PKG_FILES:
        shutil.copy(os.path.join(src, name), pkg / name)
    if extension_source is not None:
        (pkg / "_shoal_cffi.py").write_text(extension_source)
    return tmp_path


def _import_error(root):
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(
        [sys.executable, "-c",
         "try:\n"
         "    import shoal\n"
         "except ImportError as e:\n"
         "    print('MSG', e)\n"
         "    print('CAUSE', repr(e.__cause__))\n"
         "else:\n"
         "    print('IMPORTED')\n"],
        env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_broken_extension_keeps_the_loader_message(tmp_path):
    root = _fake_package(tmp_path, 'raise ImportError("undefined symbol: '
                         'shoal_made_up_function")\n')
    out = _import_error(root)
    assert "failed to load" in out
    assert "undefined symbol: shoal_made_up_function" in out
    assert "is missing" not in out
    assert "CAUSE ImportError('undefined symbol" in out


def test_missing_extension_says_missing(tmp_path):
    out = _import_error(_fake_package(tmp_path, None))
    assert "shoal._shoal_cffi is missing" in out
    assert "CAUSE ModuleNotFoundError" in out


def test_an_unrelated_missing_module_is_not_called_missing_extension(tmp_path):
    root = _fake_package(tmp_path, "import shoal_no_such_dependency\n")
    out = _import_error(root)
    assert "failed to load" in out and "shoal_no_such_dependency" in out
