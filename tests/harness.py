"""A tiny check harness shared by the Python test files: each test is a function
named test_*; a failed assert fails it. Prints one line per failure and a
closing 'N passed, N failed' line; exits non-zero on any failure."""
import os
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILN = os.path.join(ROOT, os.environ.get("KILN_BUILD", "build"), "bin", "kiln")
PYTHON = sys.executable
# The sanitizer pass (make test-sanitize) builds the runtime and every model with
# AddressSanitizer, which does not run under qemu-user.
SANITIZED = "-fsanitize" in os.environ.get("CC", "")

sys.path.insert(0, os.path.join(ROOT, "bench"))
from npy_inputs import input_files  # noqa: E402,F401  (the tests' models are bench/models.py's)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("errors", "replace")
    kw.setdefault("timeout", 300)
    return subprocess.run(cmd, **kw)


def main(module_globals, label):
    tests = [(n, f) for n, f in sorted(module_globals.items()) if n.startswith("test_") and callable(f)]
    only = sys.argv[1] if len(sys.argv) > 1 else None
    passed = failed = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        try:
            fn()
            passed += 1
        except Exception:
            failed += 1
            print("FAIL %s.%s\n%s" % (label, name, traceback.format_exc(limit=3)))
    print("%s: %d passed, %d failed" % (label, passed, failed))
    return 1 if failed else 0
