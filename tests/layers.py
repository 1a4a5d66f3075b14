"""The layers of ../shared/DESIGN.md, checked: kiln.c and driver/ -> codegen/
-> passes/ -> ir/, with frontend/ beside passes/ and runtime/ at the bottom.
Every #include "..." of the compiler's and the runtime's sources must point to
its own layer or one below it; ir/ includes nothing of ours outside ir/, and
links alone: tests/unit/ir_alone.c, built against libkilnir.a (every object of
ir/) and libc only, builds a graph, infers and prints it."""
import glob
import os
import re
import subprocess
import tempfile

from harness import ROOT, main, run

BUILD = os.path.join(ROOT, os.environ.get("KILN_BUILD", "build"))

# what each layer may include, besides itself
ALLOWED = {
    "runtime": set(),
    "ir": set(),
    "frontend": {"ir", "runtime"},
    "passes": {"ir", "runtime"},
    "codegen": {"passes", "ir", "runtime"},
    "driver": {"codegen", "passes", "frontend", "ir", "runtime"},
    "kiln.c": {"codegen", "passes", "frontend", "ir", "runtime"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    rel = os.path.relpath(path, ROOT)
    top = rel.split(os.sep)[0]
    return top if top in ALLOWED else None


def upward_edges(files):
    """(file, included file) pairs that cross a layer the wrong way; files maps a
    path under ROOT to its text."""
    bad = []
    for path, text in sorted(files.items()):
        src = layer_of(path)
        for inc in INCLUDE.findall(text):
            target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
            if not os.path.exists(target) and target not in files:
                continue  # a generated header (onnx.pb-c.h) or one on the include path
            dst = layer_of(target)
            if dst is None or dst == src or dst in ALLOWED[src]:
                continue
            bad.append((os.path.relpath(path, ROOT), inc))
    return bad


def sources():
    files = {}
    for layer in ALLOWED:
        pats = [os.path.join(ROOT, layer)] if layer.endswith(".c") else \
            [os.path.join(ROOT, layer, "**", "*." + e) for e in ("c", "h", "def")]
        for pat in pats:
            for p in glob.glob(pat, recursive=True):
                with open(p, errors="replace") as f:
                    files[p] = f.read()
    return files


def test_no_upward_include():
    files = sources()
    assert len([p for p in files if layer_of(p) == "ir"]) >= 8, "ir/ sources not found"
    bad = upward_edges(files)
    assert not bad, "includes that point up a layer:\n" + "\n".join("  %s: #include \"%s\"" % b for b in bad)


def test_checker_sees_an_upward_include():
    # the check itself: an ir/ file that includes passes/ or the runtime, or a
    # runtime file that includes ir/, is reported
    fake = {os.path.join(ROOT, "ir", "x.c"): '#include "../passes/passes.h"\n#include "ir.h"\n',
            os.path.join(ROOT, "ir", "y.c"): '  #  include "../runtime/kiln_rt.h"\n',
            os.path.join(ROOT, "runtime", "z.c"): '#include "../ir/ir.h"\n',
            os.path.join(ROOT, "codegen", "w.c"): '#include "../driver/dyn.c"\n#include "../passes/passes.h"\n'}
    fake[os.path.join(ROOT, "driver", "dyn.c")] = ""
    got = upward_edges(fake)
    assert got == [("codegen/w.c", "../driver/dyn.c"), ("ir/x.c", "../passes/passes.h"),
                   ("ir/y.c", "../runtime/kiln_rt.h"), ("runtime/z.c", "../ir/ir.h")], got


def test_ir_links_and_runs_alone():
    lib = os.path.join(BUILD, "lib", "libkilnir.a")
    assert os.path.exists(lib), lib
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "ir_alone")
        cc = os.environ.get("CC", "cc").split()
        r = run(cc + ["-std=gnu11", "-Wall", "-Wextra", "-Werror", os.path.join(ROOT, "tests", "unit", "ir_alone.c"),
                      "-Wl,--whole-archive", lib, "-Wl,--no-whole-archive", "-lm", "-o", exe])
        assert r.returncode == 0, "the IR does not link alone:\n" + r.stderr[-3000:]
        r = run([exe])
        assert r.returncode == 0 and "ir_alone: ok" in r.stdout, r.stdout + r.stderr


if __name__ == "__main__":
    raise SystemExit(main(globals(), "layers"))
