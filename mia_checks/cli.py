"""`mia-checks`: fill the generation cache ahead of the gate (on many processes), build the test bed, or audit
its built-in demo target with no data of the user's."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .baselines import DEFAULT_STORAGE

PATH_OPTIONS = ("--mia-json=", "--mia-html=", "--mia-markdown=", "--mia-exposed-csv=", "--mia-storage=", "--junitxml=")


def _absolute_paths(args: list[str]) -> list[str]:
    """Output paths the user gives are relative to where they ran the demo, not to its empty directory."""
    out = []
    for arg in args:
        prefix = next((p for p in PATH_OPTIONS if arg.startswith(p)), None)
        out.append(arg if prefix is None else prefix + str(Path(arg[len(prefix):]).expanduser().resolve()))
    return out


def demo(target: str, extra: list[str]) -> int:
    """Build what the demo needs (cached), then run the pytest gate on it in an empty directory."""
    from .testbed import ALIASES, ensure_built
    from .testbed.build import audit_artifacts, audit_options

    start = time.perf_counter()
    name = ALIASES.get(target, target)
    root = ensure_built(audit_artifacts(name))
    args = [
        *(f"--mia-{option}={value}" for option, value in audit_options(root, name).items()),
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


GENERATE_USAGE = """usage: mia-checks generate --mia-target=… --mia-members=… --mia-nonmembers=… [--mia-* options]

Generate every image the gate's black-box attacks read, into the generation cache, so that the gate that
follows (the same options) generates nothing. The options are the gate's, parsed by pytest as the gate
parses them: ini defaults (mia_* in pytest.ini, pyproject.toml, …) apply too.

Many processes fill one cache together: under `accelerate launch -m mia_checks.cli generate …` each process
(multi-GPU, multi-node) takes its shard of the missing images first, on its own device when --mia-device is
auto, then helps with what is left; separate runs started at once on one cache cooperate the same way.

options:
"""


def generate_help() -> str:
    from .plugin.options import FLAGS, OPTIONS

    width = max(len(name) for name, _ in OPTIONS + FLAGS) + 8
    lines = [f"  --mia-{name + '=' + name.split('-')[-1].upper():<{width}} {text}" for name, text in OPTIONS]
    lines += [f"  --mia-{name:<{width}} {text}" for name, text in FLAGS]
    return GENERATE_USAGE + "\n".join(lines)


class GenerateCommand:
    """A pytest plugin for `mia-checks generate`: mia-checks' own pytest_configure parses and checks the
    options as the gate does; then, instead of collecting tests, this fills the cache."""

    def __init__(self) -> None:
        self.code: int | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # not a test session: no header, no "no tests ran"
            config.pluginmanager.unregister(reporter)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session) -> bool:
        from .errors import MEASUREMENT_ERRORS, MiaUsageError

        try:
            self.code = fill_cache(session.config)
        except MiaUsageError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            self.code = 4
        except MEASUREMENT_ERRORS as exc:
            print(f"mia-checks generate: cannot generate: {exc}", file=sys.stderr)
            self.code = 1
        return True  # collected: nothing


def fill_cache(config) -> int:
    """Generate what the configured gate would generate (target, and shadow model in shadow mode)."""
    from dataclasses import replace

    from .errors import MiaUsageError
    from .generation.shards import launcher_device, leave_process_group, shard_from_environment
    from .plugin.session import active_session

    mia = active_session(config)
    if mia is None:
        raise MiaUsageError("mia-checks generate needs --mia-target, --mia-members and --mia-nonmembers (or their "
                            "ini twins mia_target, …), as the gate does.")
    shard = shard_from_environment()
    if shard.source == "accelerate" and mia.settings.device == "auto":
        mia.checked = replace(mia.checked, settings=replace(mia.settings, device=launcher_device()))
    try:
        return _fill(mia, shard)
    finally:
        if shard.source == "accelerate":
            leave_process_group()


def _fill(mia, shard) -> int:
    from .attacks import ATTACKS, BLACK_BOX
    from .errors import MiaUsageError

    audit = mia.get_audit()
    if not any(ATTACKS[a].access == BLACK_BOX for a in audit.attacks):
        print(f"mia-checks generate: nothing to generate: the attacks that run ({', '.join(audit.attacks)}) read "
              "no generations.")
        return 0
    s = mia.settings
    for audit in [audit] + ([audit.shadow] if s.shadow_target else []):
        if audit.target.run_scoped:
            raise MiaUsageError(f"--mia-target: {audit.settings.target} declares no identity, so its generations are "
                                "kept for one run only and generating them ahead would be lost; declare what it is "
                                "with --mia-target-identity (or the function's mia_identity attribute).")
        cache = audit.generation_cache
        generated = cache.ensure(audit.captions, s.seed, s.generations, s.batch_size, mia.progress, shard)
        who = f" [{shard.label}]" if shard.label else ""
        print(f"mia-checks generate{who}: {audit.settings.target}: {generated} image(s) generated, "
              f"{cache.stats.cached} already cached, {cache.stats.wanted} in all, in {cache.stats.seconds:.1f} s; cache "
              f"{cache.folder}", flush=True)
    return 0


def generate(args: list[str]) -> int:
    """`mia-checks generate [--mia-* options]`: the gate's options, parsed by pytest with mia-checks' plugin."""
    if "-h" in args or "--help" in args:
        print(generate_help())
        return 0
    command = GenerateCommand()
    code = pytest.main([*args, "--collect-only", "-p", "no:cacheprovider"], plugins=[command])
    return int(code) if command.code is None else command.code


def history(storage: str, outputs: list[str]) -> int:
    """`mia-checks history`: the trend report of the saved runs in `storage`, to each of `outputs`."""
    from .errors import MiaUsageError
    from .history import load_series
    from .reports.trend import FORMATS, write_trend

    try:
        for path in outputs:
            if Path(path).suffix.lower() not in FORMATS:
                raise MiaUsageError(f"--mia-history: {path}: write a {' or a '.join(FORMATS)} file")
        series = load_series(storage)
        for path in outputs:
            write_trend(path, series, storage)
    except MiaUsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    print(f"mia-checks history: {len(series)} saved run{'s' * (len(series) != 1)} from {storage}/ "
          f"({series[0].label} … {series[-1].label}) → {', '.join(outputs)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mia-checks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="audit a built-in test-bed target (default: leaky); extra args go to pytest, "
                                    "e.g. --mia-html=report.html")
    d.add_argument("--target", default="leaky", help="leaky, mild, null, shadow, ldm-leaky, ldm-null, finetune, "
                                                     "finetune-null, finetune-dup, finetune-dp-control, finetune-dp50, "
                                                     "finetune-dp8, finetune-dp1; the emoji tier's emoji-finetune, "
                                                     "emoji-finetune-null, emoji-finetune-dup, emoji-lora (its "
                                                     "256 + 256 colour emoji), emoji-base; the benchmark-only "
                                                     "emoji-large-finetune, emoji-large-finetune-null (400 + 400, "
                                                     "built on first use) (or any test-bed target's name)")
    sub.add_parser("generate", add_help=False,
                   help="fill the generation cache ahead of the gate, on one or many processes (accelerate launch); "
                        "the gate's --mia-* options (see mia-checks generate --help)")
    h = sub.add_parser("history", help="the trend of the saved runs: each attack's gate metric over the runs, and "
                                       "ε lower bound against declared ε, as an HTML page or a PNG")
    h.add_argument("--mia-storage", default=DEFAULT_STORAGE, help=f"folder of saved runs (default {DEFAULT_STORAGE})")
    h.add_argument("--mia-history", action="append", required=True, metavar="PATH",
                   help="write the trend here: .html (self-contained page) or .png; may be given twice")
    b = sub.add_parser("testbed", help="build the whole test bed into the cache")
    b.add_argument("--cache-dir", type=Path, default=None)
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo(args.target, extra)
    if args.command == "generate":
        return generate(extra)
    if args.command == "history":
        if extra:
            parser.error(f"history: unrecognised arguments: {' '.join(extra)}")
        return history(args.mia_storage, args.mia_history)
    from .testbed.build import main as build_main

    return build_main(extra + (["--cache-dir", str(args.cache_dir)] if args.cache_dir else []))


if __name__ == "__main__":
    sys.exit(main())
