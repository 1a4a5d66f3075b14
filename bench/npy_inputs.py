"""The input files of a model as bench/models.py and examples/moe/make_model.py
write them (NAME_in0.npy, NAME_in1.npy, ...), shared by the bench scripts and
the tests."""
import os
import re


def input_files(d, name):
    """Paths of NAME_inK.npy in directory d, in input order (in10 after in9)."""
    pat = re.compile(re.escape(name) + r"_in(\d+)\.npy$")
    found = [(int(m.group(1)), f) for f in os.listdir(d) for m in [pat.match(f)] if m]
    return [os.path.join(d, f) for _, f in sorted(found)]
