"""Every global symbol the project's library (libk2a.a: all of src/ but the mains) defines carries the k2a_ prefix
(DESIGN.md §5), so that nothing it exports can collide with a symbol of h2o, libuv, OpenSSL, yajl or c-ares, or of a
program that links it. Internal cross-file functions use a module prefix under it (k2a_up_ in src/upstream/).
Symbols the sanitizers generate (__asan_*, __odr_asan_*...) are not the project's and are ignored."""
import os
import re
import subprocess
import unittest

from k2a import main

BUILD = os.environ.get("K2A_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def exported(lib):
    out = subprocess.run(["nm", "-g", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] not in ("U", "w", "v"):
            names.append(parts[2])
    return names


class Symbols(unittest.TestCase):
    def test_every_exported_symbol_is_prefixed(self):
        lib = os.path.join(BUILD, "libk2a.a")
        self.assertTrue(os.path.exists(lib), lib)
        names = exported(lib)
        self.assertGreater(len(names), 500, "nm listed too few symbols: %d" % len(names))
        generated = re.compile(r"^(__asan|__odr_asan|__ubsan|__sancov|__llvm|___asan)")
        bad = sorted(set(n for n in names if not n.startswith("k2a_") and not generated.match(n)))
        self.assertEqual(bad, [], "global symbols without the k2a_ prefix: %s" % ", ".join(bad))


if __name__ == "__main__":
    main()
