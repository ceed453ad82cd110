"""pytest hooks of mia-checks. Thin by design: the logic lives in modules that know nothing of pytest.

Nothing heavy is imported unless --mia-target (or its ini twin mia_target) is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

GATE_TESTS = Path(__file__).with_name("gate_tests.py")

# name (→ --mia-NAME and ini mia_NAME), help. Defaults live in AuditSettings; the command line beats the ini.
OPTIONS: tuple[tuple[str, str], ...] = (
    ("target", "model under audit: a diffusers pipeline folder, a single-file checkpoint (.safetensors), or "
               "package.module:function (black box)"),
    ("target-config", "single-file target: the diffusers pipeline folder (or hub id) whose configs describe it "
                      "(default: diffusers infers them from the checkpoint and fetches them from the hub)"),
    ("target-identity", "callable target: what it is (model version, weights hash, endpoint and revision); its "
                        "generations are cached under it and reused across runs. Without it (or the function's "
                        "mia_identity attribute) a callable's generations are not reused across runs"),
    ("lora", "LoRA adapter to apply on the target pipeline: the folder save_lora_weights wrote, or its .safetensors"),
    ("members", "member reference set: image folder with metadata.jsonl, or a .jsonl/.csv manifest"),
    ("nonmembers", "non-member reference set (held out, same distribution), same formats"),
    ("threshold", "leakage threshold of the gate metric, e.g. 0.6, or per attack: 0.55,II-P=0.6 "
                  "(defaults: accuracy/auc 0.55, tpr@1%fpr 0.05, advantage 0.1)"),
    ("gate-metric", "metric the gate compares: auc (default), accuracy (the paper's), tpr@1%fpr, advantage"),
    ("gate-rule", "bound (default: one-sided lower confidence bound, Bonferroni over attacks) or point"),
    ("alpha", "false-alarm rate of the bound rule over the whole run (default 0.05)"),
    ("attacks", "attacks to run, ids and groups: black-box I-P,I-S,II-P,II-S,III,IV; white-box loss,SimA,PIA,SecMI,CLiD; "
                "groups blackbox, whitebox, all (default all: white-box ones are skipped on targets without weights; "
                "token models, seq2seq and aMUSEd, run loss alone)"),
    ("loss-timesteps", "white-box loss attack: timesteps of its grid (default 100,200,300,400,500)"),
    ("sima-timesteps", "white-box SimA: timesteps at which the clean latent is fed (default 50,100,200)"),
    ("pia-timestep", "white-box PIA: its timestep t (default 200)"),
    ("secmi-timestep", "white-box SecMI: the timestep t_sec it scores (default 100)"),
    ("secmi-interval", "white-box SecMI: the DDIM interval k (default 10)"),
    ("clid-timesteps", "white-box CLiD: timesteps of its loss (default 440,450,460)"),
    ("clid-captions", "white-box CLiD: reduced captions null,first,middle,last (default all four)"),
    ("token-mask-ratios", "white-box loss on aMUSEd: the share of tokens masked, one fixed seeded mask per ratio "
                          "(default 0.25,0.5,0.75)"),
    ("combine", "operations combining embeddings in attack IV: concat,difference,product,cosine (default all)"),
    ("seed", "seed of generation, folds and attack models (default 0)"),
    ("steps", "denoising steps per generation (default 25)"),
    ("guidance", "classifier-free guidance scale (default: the pipeline's own)"),
    ("temperature", "seq2seq (DALL·E-style) targets: sampling temperature (default: the model's own)"),
    ("top-k", "seq2seq targets: sample from the k most likely image codes (default: the model's own)"),
    ("supercondition", "seq2seq targets: DALL·E mini's supercondition factor f, logits f·cond + (1−f)·uncond; "
                       "1 turns it off (default: the model's own)"),
    ("generations", "generations per query, K (default 2): distances take the best of K"),
    ("device", "auto (default), cpu, cuda, cuda:1 …"),
    ("batch-size", "prompts per generation batch (default 16)"),
    ("embedder", "image-text embedder of the semantic attacks: open_clip MODEL:TAG (default ViT-B-32:openai), "
                 "hf-hub:org/repo, transformers:openai/clip-vit-base-patch32 or transformers:Salesforce/blip-itm-base-coco, "
                 "or a local folder with open_clip_config.json"),
    ("captioner", "caption-less mode: a BLIP captioning model (e.g. Salesforce/blip-image-captioning-base, or a "
                  "local folder) captions every query, members and non-members alike; captions in the sets are ignored"),
    ("folds", "folds of the partial-knowledge protocol (default 5)"),
    ("known-fraction", "ablation: the attacker's known part as a fraction of all queries, at most (k-1)/k "
                       "(default: all k-1 training folds)"),
    ("cache-dir", "where generations are cached (default $MIA_CHECKS_CACHE or ~/.cache/mia-checks)"),
    ("json", "write the JSON report to this path"),
    ("max-samples", "use at most this many images per reference set (seeded sample)"),
    ("shadow-target", "shadow-model mode: a model of the same kind that you trained yourself; the attack models "
                      "are fitted on its features and applied, frozen, to the target"),
    ("shadow-members", "the shadow model's members (its training images)"),
    ("shadow-nonmembers", "the shadow model's non-members"),
    ("shift-check", "distribution-shift guard, a no-model attack on the query images alone: warn (default), "
                    "error (every attack test errors when it beats chance), off"),
    ("storage", "folder of saved runs (default .mia-checks)"),
    ("save", "save this run's JSON report in the storage folder as NNNN_NAME.json"),
    ("compare", "compare with a saved run: latest (the default when the flag has no value), a number, or a "
                ".json path; the table shows the baseline and the delta per attack"),
    ("compare-fail", "fail an attack whose metric rose beyond the baseline by more than allowed, e.g. "
                     "auc:0.02,accuracy:5% (absolute, or % of the baseline); implies --mia-compare=latest"),
    ("compare-rule", "bound (default: fail when the one-sided lower bound of the rise, paired bootstrap, exceeds "
                     "the allowance) or point (when the point difference does)"),
    ("html", "write the self-contained HTML report (table, ROC curves, score histograms, image pairs) here"),
    ("markdown", "write a Markdown summary (for pull-request comments) here"),
    ("progress", "generation progress on stderr, shown without -s/-v: auto (default: a bar with rate and ETA on a "
                 "terminal, a line every 30 s in a log such as CI's), bar, log, off"),
)
FLAGS = (
    ("allow-pickle", "allow pickle-based checkpoints (they can run code when loaded: trusted files only)"),
    ("autosave", "save this run in the storage folder, named after the time (UTC)"),
    ("track", "tracking mode: report leakage and regressions (as warnings) without failing; errors stay errors"),
)
OPTIONAL_VALUE = {"compare": "latest"}  # --mia-compare alone means the latest saved run


@dataclass(eq=False)  # registered as a plugin: pluggy hashes plugins (a conftest.py in the project needs it)
class MiaSession:
    """Per-run state, kept in config.stash: settings, the lazily created audit, and collected records."""

    settings: Any
    members: Any
    nonmembers: Any
    progress: Any = True  # a generation.Progress (mode and stream), or a bool
    audit: Any = None
    baseline: Any = None  # the SavedRun compared with, if any
    baseline_document: dict | None = None
    records: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    saved: Any = None  # the SavedRun this run was saved as
    write_errors: dict[str, str] = field(default_factory=dict)  # report label → why it could not be written
    config: Any = None
    run_id: str = ""  # this run's id, shared with pytest-xdist workers: the scope of run-only generations
    worker_generation: dict[str, dict] = field(default_factory=dict)  # xdist worker id → its generation stats
    _header: dict | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect per-attack records (reports from pytest-xdist workers arrive on the controller too), and
        errors: a gate test that failed without a record (in its fixture, or by a warning turned error)."""
        if not report.nodeid.startswith("mia-checks::test_attack["):
            return
        attack = report.nodeid.rsplit("[", 1)[1].rstrip("]")
        raw = getattr(report, "mia_record", None)
        if raw is not None and report.when == "call":
            record = json.loads(raw)
            self.records[record["attack"]] = record
            self._junit_suite_properties(record)
        elif report.failed and report.when in ("setup", "call") and attack not in self.records:
            self.errors[attack] = _error_message(report)

    def _junit_suite_properties(self, record: dict) -> None:
        """xunit2 (pytest's default) has no test-case properties: the per-attack ones go on the test suite."""
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover — a pytest without it writes no suite properties
            return
        xml = self.config.stash.get(xml_key, None) if self.config is not None else None
        if xml is not None and xml.family not in ("xunit1", "legacy"):
            from .gate_tests import junit_properties

            for name, value in junit_properties(record):
                xml.add_global_property(name.replace("mia.", f"mia.{record['attack']}.", 1), value)

    def get_audit(self):
        if self.audit is None:
            from .audit import Audit

            self.audit = Audit(self.settings, self.members, self.nonmembers, progress=self.progress,
                               run_id=self.run_id)
        return self.audit

    def baseline_record(self, attack: str) -> dict | None:
        from .baselines import baseline_records

        return None if self.baseline_document is None else baseline_records(self.baseline_document).get(attack)

    def paired_with_baseline(self) -> bool:
        from .baselines import same_queries

        return same_queries(self.baseline_document, self.members.digest, self.nonmembers.digest)

    def document(self) -> dict:
        """The run's report: header (run, baseline, mode), per-attack records in the run's order, errors."""
        if self._header is None:
            from .baselines import baseline_header

            header = self.get_audit().header()
            header["mode"] = "track" if self.settings.track else "gate"
            self._header = {**header, **baseline_header(self.settings, self.baseline, self.baseline_document, header)}
        records = [self.records[a] for a in self.settings.attacks if a in self.records]
        return {**self._header, "results": records, "errors": dict(self.errors)}


def generation_line(who: str, stats: dict) -> str:
    """'gw0 generated 40 images in 12 s (shard 1 of 2; 24 already cached)'."""
    shard = f"shard {stats['rank'] + 1} of {stats['world']}; " if stats["world"] > 1 else ""
    return (f"{who} generated {stats['generated']} image{'s' * (stats['generated'] != 1)} in "
            f"{stats['seconds']:.0f} s ({shard}{stats['cached']} already cached)")


def _error_message(report: pytest.TestReport) -> str:
    """The exception's own message (a traceback's last line is only where it was raised)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None or not crash.message:
        return report.longreprtext.strip().splitlines()[-1]
    message = crash.message.strip().removeprefix("Failed: ")  # pytest.fail's own prefix
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


SESSION_KEY = pytest.StashKey[MiaSession]()
RECORD_KEY = pytest.StashKey[str]()  # a gate test's record (JSON), set by the test, copied onto its report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Put the gate test's record on its call report: pytest-xdist carries report attributes to the controller."""
    report = yield
    if call.when == "call" and RECORD_KEY in item.stash:
        report.mia_record = item.stash[RECORD_KEY]
    return report


def _dest(name: str) -> str:
    return "mia_" + name.replace("-", "_")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mia-checks", "mia-checks: membership-inference privacy gate for text-to-image models")
    for name, help_text in OPTIONS:
        optional = {"nargs": "?", "const": OPTIONAL_VALUE[name]} if name in OPTIONAL_VALUE else {}
        group.addoption(f"--mia-{name}", dest=_dest(name), default=None, metavar=name.split("-")[-1].upper(),
                        help=help_text.replace("%", "%%"), **optional)
        parser.addini(_dest(name), help=f"default of --mia-{name}", default=None)
    for name, help_text in FLAGS:
        group.addoption(f"--mia-{name}", dest=_dest(name), action="store_true", default=None, help=help_text)
        parser.addini(_dest(name), help=f"default of --mia-{name}", type="bool", default=False)


def _raw_options(config: pytest.Config) -> dict[str, str | None]:
    raw = {}
    for name, _ in OPTIONS + FLAGS:
        value = config.getoption(_dest(name))
        raw[name] = value if value is not None else config.getini(_dest(name))
    return raw


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    raw = _raw_options(config)
    if not raw["target"]:
        return
    from .audit import load_reference_sets
    from .errors import MiaUsageError
    from .settings import build_settings, parse_progress
    from .embedders import check_embedder_spec
    from .targets import check_target_spec, check_whitebox_choice
    from .validation import check_folds, check_run_environment

    try:
        settings = build_settings(raw)
        progress_mode = parse_progress(raw["progress"])
        check_embedder_spec(settings.embedder, settings.allow_pickle)
        if settings.captioner:
            from .captioning import check_captioner_spec

            check_captioner_spec(settings.captioner, settings.allow_pickle)
        check_target_spec(settings.target, settings.allow_pickle, lora=settings.lora, config=settings.target_config)
        check_whitebox_choice(settings)
        check_run_environment(settings)
        members, nonmembers = load_reference_sets(settings)
        check_folds(settings.folds, len(members))
        if settings.shadow_target:
            check_target_spec(settings.shadow_target, settings.allow_pickle, "--mia-shadow-target",
                              config=settings.target_config)
            check_folds(settings.folds, len(load_reference_sets(settings, shadow=True)[0]),
                        "--mia-shadow-members/--mia-shadow-nonmembers")
        baseline = None
        if settings.compare:
            from .baselines import ResultsStore

            baseline = ResultsStore(settings.storage).find(settings.compare)
    except MiaUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    from .generation import Progress

    progress = Progress(progress_mode, _real_stderr() if progress_mode != "off" else None)
    import uuid

    run_id = getattr(config, "workerinput", {}).get("mia_run_id") or uuid.uuid4().hex
    config.stash[SESSION_KEY] = session = MiaSession(settings, members, nonmembers, progress, baseline=baseline,
                                                     config=config, run_id=run_id)
    if baseline is not None:
        try:
            session.baseline_document = baseline.load()
        except MiaUsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(session, "mia-checks-session")
    config.addinivalue_line("markers", "mia: a membership-inference gate test of mia-checks")


def _real_stderr():
    """A handle on this process's stderr as it is now, before pytest captures file descriptor 2 around each
    test: the progress bar reaches the terminal (or the CI log) without -s."""
    import os
    import sys

    try:
        return os.fdopen(os.dup(sys.__stderr__.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # no usable stderr (pythonw, a closed descriptor)
        return None


def pytest_unconfigure(config: pytest.Config) -> None:
    mia = _session(config)
    stream = getattr(mia and mia.progress, "stream", None)
    if stream is not None:
        stream.close()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: keep what each worker generated, for the summary."""
    mia = _session(node.config)
    stats = getattr(node, "workeroutput", {}).get("mia_generation")
    if mia is not None and stats:
        mia.worker_generation[node.gateway.id] = json.loads(stats)


def generation_stats(mia: MiaSession) -> dict | None:
    """What this process generated for the run's audits (target and shadow), None if it never looked."""
    audits = (mia.audit, mia.audit and mia.audit.__dict__.get("shadow"))
    caches = [a.__dict__.get("generation_cache") for a in audits if a is not None]
    stats = [c.stats for c in caches if c is not None and c.stats.seconds > 0]
    if not stats:
        return None
    return {**stats[0].to_dict(), **{k: sum(getattr(s, k) for s in stats) for k in ("generated", "cached")},
            "seconds": round(sum(s.seconds for s in stats), 3)}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: workers share the controller's run id (one scope for run-only generations)."""
    mia = _session(node.config)
    if mia is not None:
        node.workerinput["mia_run_id"] = mia.run_id


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The gate tests run with no test file of the user's: collect our module directly under the session
    (no directory walk, so no conftest of wherever the package is installed gets involved)."""
    if _session(config) is None:
        return
    module = pytest.Module.from_parent(session, path=GATE_TESTS, nodeid="mia-checks")
    gate_items = [item for item in module.collect() if isinstance(item, pytest.Item)]
    for item in gate_items:
        config.hook.pytest_itemcollected(item=item)
    # Counted in "collected N items" like any collected module.
    config.hook.pytest_collectreport(report=pytest.CollectReport(module.nodeid, "passed", None, gate_items))
    items[:0] = gate_items


def _session(config: pytest.Config) -> MiaSession | None:
    return config.stash.get(SESSION_KEY, None)


@pytest.fixture(scope="session")
def mia_session(pytestconfig: pytest.Config) -> MiaSession:
    session = _session(pytestconfig)
    if session is None:
        pytest.skip("mia-checks is not active: pass --mia-target, --mia-members and --mia-nonmembers")
    return session


@pytest.fixture(scope="session")
def mia_settings(mia_session: MiaSession):
    """The audit's settings (mia_checks.settings.AuditSettings)."""
    return mia_session.settings


@pytest.fixture(scope="session")
def mia_members(mia_session: MiaSession):
    """The member reference set (mia_checks.data.ReferenceSet)."""
    return mia_session.members


@pytest.fixture(scope="session")
def mia_nonmembers(mia_session: MiaSession):
    """The non-member reference set (mia_checks.data.ReferenceSet)."""
    return mia_session.nonmembers


@pytest.fixture(scope="session")
def mia_audit(mia_session: MiaSession):
    """The audit (mia_checks.audit.Audit): `mia_audit.result("II-P").auc.value`, `.verdict("IV")`, …"""
    return mia_session.get_audit()


@pytest.fixture(scope="session")
def mia_target(mia_audit):
    """The loaded target (mia_checks.targets.Target): `.generate(prompts, seeds)`."""
    return mia_audit.target


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write what was asked for (controller only): JSON, saved run, HTML, Markdown."""
    config = session.config
    mia = _session(config)
    if mia is not None and hasattr(config, "workeroutput"):  # a pytest-xdist worker: report its generation
        stats = generation_stats(mia)
        if stats:
            config.workeroutput["mia_generation"] = json.dumps(stats)
    if mia is None or hasattr(config, "workerinput") or not (mia.records or mia.errors):
        return
    from .report import format_markdown, write_json

    settings, document = mia.settings, mia.document()

    def save_run() -> None:
        from .baselines import ResultsStore, autosave_name

        mia.saved = ResultsStore(settings.storage).save(document, settings.save or autosave_name())

    def write_markdown() -> None:
        path = Path(settings.markdown_report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(format_markdown(document), encoding="utf-8")

    def write_html_report() -> None:
        from .html_report import strongest, write_html

        top = strongest(document["results"])
        pairs = None if top is None else mia.get_audit().image_pairs(top)
        write_html(settings.html_report, document, pairs, top and top["attack"])

    # A report that cannot be written is named on screen (the terminal report still prints) and fails the run.
    for label, path, write in (("JSON report", settings.json_report, lambda: write_json(settings.json_report, document)),
                               ("saved run", settings.save or settings.autosave, save_run),
                               ("Markdown summary", settings.markdown_report, write_markdown),
                               ("HTML report", settings.html_report, write_html_report)):
        if not path:
            continue
        try:
            write()
        except Exception as exc:  # noqa: BLE001 — whatever failed, the run's verdict must still be shown
            where = settings.storage if label == "saved run" else path
            mia.write_errors[label] = f"could not write the {label} to {where}: {type(exc).__name__}: {exc}"
    if mia.write_errors and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _drop_run_only_generations(mia)


def _drop_run_only_generations(mia: MiaSession) -> None:
    """An undeclared callable's generations served this run only (and its report): remove them."""
    import shutil

    for audit in (mia.audit, mia.audit and mia.audit.__dict__.get("shadow")):
        target = audit and audit.__dict__.get("target")  # only a target this process loaded
        if target is not None and target.run_scoped:
            shutil.rmtree(mia.settings.cache_root() / "generations" / target.identity[:24], ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    mia = _session(config)
    if mia is None or not (mia.records or mia.errors):
        return
    from .report import error_line, format_header, format_shift, format_table, outcome

    tr, document = terminalreporter, mia.document()
    tr.write_sep("=", "mia-checks privacy report")
    tr.write_line(format_header(document))
    shift = format_shift(document["results"])
    if shift:
        tr.write_line(shift, red=shift.startswith("WARNING"), bold=shift.startswith("WARNING"))
    if document["results"]:
        tr.write_line("")
        tr.write_line(format_table(document["results"]))
    for attack, error in sorted(document["errors"].items()):
        tr.write_line(error_line(attack, error), red=True)
    line = outcome(document)
    tr.write_line(line, red=line.startswith("FAIL"), green=line.startswith("PASS"), bold=True)
    for worker, stats in sorted(mia.worker_generation.items(), key=lambda item: item[1]["rank"]):
        tr.write_line(generation_line(worker, stats))
    settings = mia.settings
    for label, path in (("JSON report", settings.json_report), ("saved run", mia.saved and mia.saved.path),
                        ("HTML report", settings.html_report), ("Markdown summary", settings.markdown_report)):
        if path and label not in mia.write_errors:
            tr.write_line(f"{label}: {path}")
    for error in mia.write_errors.values():
        tr.write_line(f"ERROR: {error}", red=True, bold=True)
