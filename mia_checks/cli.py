"""`mia-checks`: build the test bed, or audit its built-in demo target with no data of the user's."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


PATH_OPTIONS = ("--mia-json=", "--mia-html=", "--mia-markdown=", "--mia-storage=", "--junitxml=")


def _absolute_paths(args: list[str]) -> list[str]:
    """Output paths the user gives are relative to where they ran the demo, not to its empty directory."""
    out = []
    for arg in args:
        prefix = next((p for p in PATH_OPTIONS if arg.startswith(p)), None)
        out.append(arg if prefix is None else prefix + str(Path(arg[len(prefix):]).expanduser().resolve()))
    return out


def demo(target: str, extra: list[str]) -> int:
    """Build what the demo needs (cached), then run the pytest gate on it in an empty directory."""
    import pytest

    from .testbed import ALIASES, ensure_built

    start = time.perf_counter()
    root = ensure_built(["data", "clip", target])
    name = ALIASES.get(target, target)
    args = [
        f"--mia-target={root / name}",
        f"--mia-members={root / 'data' / 'members'}",
        f"--mia-nonmembers={root / 'data' / 'nonmembers'}",
        f"--mia-embedder={root / 'clip'}",
        "--mia-guidance=1",  # the test bed's models were never trained on empty prompts
        "-p", "no:cacheprovider",
        *_absolute_paths(extra),
    ]
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as empty:
        print(f"mia-checks demo: pytest {' '.join(args)}", flush=True)
        os.chdir(empty)  # an empty project: only the gate tests are collected
        try:
            code = pytest.main([*args, "--rootdir", empty])
        finally:
            os.chdir(cwd)
    print(f"mia-checks demo: {time.perf_counter() - start:.0f} s in all")
    if code == pytest.ExitCode.TESTS_FAILED:
        print("mia-checks demo: the gate failed the target: it leaks (expected for the leaky demo target).")
    # The demo succeeded if the audit ran, whatever its verdict; usage and internal errors stay errors.
    return 0 if code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) else int(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mia-checks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="audit a built-in test-bed target (default: leaky); extra args go to pytest, "
                                    "e.g. --mia-html=report.html")
    d.add_argument("--target", default="leaky", help="leaky, mild, null, shadow, ldm-leaky, ldm-null")
    b = sub.add_parser("testbed", help="build the whole test bed into the cache")
    b.add_argument("--cache-dir", type=Path, default=None)
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo(args.target, extra)
    from .testbed.build import main as build_main

    return build_main(extra + (["--cache-dir", str(args.cache_dir)] if args.cache_dir else []))


if __name__ == "__main__":
    sys.exit(main())
