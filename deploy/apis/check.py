"""``attnx check``: the CI gate. A fresh parity + bench result against a committed baseline JSON.

Fails (exit 1) when
  * accuracy leaves its policy: a parity report fails, a report in the baseline was not run, or a policy
    was loosened compared with the baseline's (a gate that can be relaxed by a flag is no gate);
  * latency regresses: for every backend and batch, its latency *relative to the reference backend
    (PyTorch eager) measured in the same run* has grown by more than ``max_slowdown`` (default 15 %)
    over the baseline's ratio. A slower or busier CI machine slows the reference too, so the ratio
    stays put and no false alarm is raised; a backend that really got slower moves its ratio.
    The ratio is by default the benchmark's *paired* one (median over rounds of this block's median over
    the reference block's median in the same round: load that hits a round hits both); ``stat`` = p50,
    mean, p90, ... takes the ratio of those statistics over the whole run instead.
Prints what changed either way; ``update=True`` rewrites the baseline from the fresh result.

A *record* (the baseline file, or a fresh result) is JSON:
    {"format": "attnx-record", "version": 1, "model": ..., "parity": [ParityReport dicts],
     "bench": BenchResult dict (samples dropped) or null, "created": ...}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.core.files import write_json
from attnx.deploy.bench.measure import load_result
from attnx.deploy.parity.report import json_safe

if TYPE_CHECKING:
    from rich.table import Table

    from attnx.deploy.bench.measure import BenchResult
    from attnx.deploy.parity.report import ParityReport

FORMAT = "attnx-record"
VERSION = 1
STATS = ("paired", "p50", "mean", "p90", "p95", "p99", "min")
DEFAULT_MAX_SLOWDOWN = 0.15


@dataclass
class Change:
    """One finding of a check: ``kind`` (accuracy | latency | coverage | info), ``key`` (the parity output, tolerance
    or backend at a batch it concerns), ``message``, whether it ``failed`` the gate, and the ``baseline`` / ``fresh``
    numbers where there are any (a tolerance, a max abs error, a latency ratio to the reference; the reference's
    own latency in ms).
    """

    kind: str  # accuracy | latency | coverage | info
    key: str  # what changed: a parity output, a backend at a batch
    message: str
    failed: bool = False
    baseline: float | None = None
    fresh: float | None = None


@dataclass
class CheckResult:
    """The verdict of :func:`run_check` / :func:`compare_to_baseline`: the ``model``, the baseline file, the latency
    statistic (``stat``, one of STATS) and ``max_slowdown`` (a fraction: 0.15 = 15 %) applied, every :class:`Change`,
    and whether the baseline was rewritten (``updated``).
    """

    model: str
    baseline_path: str
    stat: str
    max_slowdown: float
    changes: list[Change] = field(default_factory=list)
    updated: bool = False

    @property
    def passed(self) -> bool:
        """True when no change failed the gate."""
        return not any(c.failed for c in self.changes)

    @property
    def failures(self) -> list[Change]:
        """The changes that failed the gate."""
        return [c for c in self.changes if c.failed]

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (non-finite floats as strings), with ``passed``."""
        d = asdict(self)
        d["passed"] = self.passed
        return json_safe(d)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Records


def make_record(
    parity: Sequence[ParityReport | dict[str, Any]] = (), bench: BenchResult | dict[str, Any] | None = None,
    model: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A record of one run: parity reports and a benchmark, all of one model."""
    reports = [p if isinstance(p, dict) else p.to_dict() for p in parity]
    bench_d = bench if isinstance(bench, dict) or bench is None else bench.to_dict(samples=False)
    if bench_d is not None:
        bench_d = {**bench_d, "configs": [{**c, "samples_ms": []} for c in bench_d.get("configs", [])]}
    models = {r.get("model") for r in reports} | ({bench_d.get("model")} if bench_d else set())
    models.discard(None)
    if model is not None:
        models.add(model)
    if len(models) > 1:
        raise UserError(f"the results are of different models ({', '.join(sorted(map(str, models)))}): "
                        "check one model at a time")  # fmt: skip
    if not reports and bench_d is None:
        raise UserError("nothing to check: give parity results (--parity) and/or a benchmark (--bench)")
    return {
        "format": FORMAT, "version": VERSION, "model": next(iter(models), None), "parity": reports,
        "bench": bench_d, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; {fix}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc.__class__.__name__}); {fix}") from None


def load_record(path: str | Path, what: str = "baseline") -> dict[str, Any]:
    """Read a record (a baseline or a fresh result; see the module docstring) from ``path``; ``what`` names it in
    errors. Raises :class:`~attnx.core.errors.UserError` when the file is missing, not JSON, not an ``attnx-record``,
    or of a newer record version than this attnx reads.
    """
    path = Path(path)
    fix = "create it with `attnx check --update-baseline`" if what == "baseline" else "run the pipeline again"
    data = _read_json(path, what, fix)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path} is not an attnx {what} (format {got!r}); {fix}")
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{path} has record version {version!r}, not an integer; {fix}")
    if version > VERSION:
        raise UserError(f"{path} has record version {data['version']}, newer than this attnx reads: upgrade attnx")
    return data  # type: ignore[no-any-return]


def load_parity_file(path: str | Path) -> list[dict[str, Any]]:
    """Parity reports from a file written by ``attnx parity --json``: one report, a list, or {"reports": [...]}."""
    path = Path(path)
    data = _read_json(path, "parity result", "write it with `attnx parity --json FILE`")
    reports = data.get("reports", [data]) if isinstance(data, dict) else data
    if not isinstance(reports, list) or not all(isinstance(r, dict) and "cases" in r and "precision" in r
                                                for r in reports):  # fmt: skip
        raise UserError(f"{path} is not an attnx parity report: write it with `attnx parity --json FILE`")
    return reports


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``path`` atomically as JSON (:func:`attnx.core.files.write_json`); returns the path."""
    return write_json(Path(path), record)


# ---------------------------------------------------------------------------------------------------
# Comparison


def compare_to_baseline(
    fresh: dict[str, Any], baseline: dict[str, Any], max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    stat: str = "paired", baseline_path: str = "baseline",
) -> CheckResult:  # fmt: skip
    """Judge ``fresh`` against ``baseline`` (both records). Raises UserError when they cannot be compared."""
    if stat not in STATS:
        raise UserError(f"unknown latency statistic '{stat}': choose one of {', '.join(STATS)}")
    if max_slowdown < 0:
        raise UserError(f"--max-slowdown must be ≥ 0 (a fraction, 0.15 = 15 %), got {max_slowdown}")
    if fresh.get("model") != baseline.get("model"):
        raise UserError(f"{baseline_path} is the baseline of model '{baseline.get('model')}', but this run is of "
                        f"'{fresh.get('model')}': point --baseline at this model's file")  # fmt: skip
    result = CheckResult(str(fresh.get("model")), baseline_path, stat, max_slowdown)
    _check_parity(fresh.get("parity") or [], baseline.get("parity") or [], result, baseline_path)
    _check_bench(fresh.get("bench"), baseline.get("bench"), result, baseline_path)
    return result


def parity_key(report: dict[str, Any]) -> str:
    """The key matching a parity report (a dict) across records: ``"<reference> vs <candidate> [<precision>]"``."""
    return f"{report.get('reference')} vs {report.get('candidate')} [{report.get('precision')}]"


def _check_parity(fresh: list[dict[str, Any]], base: list[dict[str, Any]], result: CheckResult, where: str) -> None:
    base_by = {parity_key(r): r for r in base}
    fresh_by = {parity_key(r): r for r in fresh}
    for key, rep in fresh_by.items():
        for case in rep.get("cases", []):
            for out in case.get("outputs", []):
                if out.get("failures"):
                    result.changes.append(Change(
                        "accuracy", f"{key} {case['label']} {out['name']}",
                        f"parity fails its {rep.get('precision')} policy: {'; '.join(out['failures'])}", failed=True,
                    ))  # fmt: skip
        if not rep.get("cases"):
            result.changes.append(Change("accuracy", key, "parity report has no cases", failed=True))
        old = base_by.get(key)
        if old is None:
            result.changes.append(Change("info", key, "new parity check (not in the baseline)"))
            continue
        _compare_tolerance(key, old.get("tolerance") or {}, rep.get("tolerance") or {}, result)
        old_cases = {c["label"]: c for c in old.get("cases", [])}
        for case in rep.get("cases", []):
            oc = old_cases.get(case["label"])
            if oc is None:
                continue
            if _shapes(oc.get("input_shapes")) != _shapes(case.get("input_shapes")):
                raise UserError(
                    f"parity case '{case['label']}' of {key} has inputs {_shapes(case.get('input_shapes'))} here but "
                    f"{_shapes(oc.get('input_shapes'))} in {where}: run with the baseline's shapes or refresh it "
                    "with --update-baseline"
                )
            old_outs = {o["name"]: o for o in oc.get("outputs", [])}
            for out in case.get("outputs", []):
                oo = old_outs.get(out["name"])
                if oo is None:
                    continue
                b, f = _num(oo.get("max_abs")), _num(out.get("max_abs"))
                if b is not None and f is not None and f > max(2 * b, 1e-9) and not out.get("failures"):
                    result.changes.append(Change(
                        "info", f"{key} {case['label']} {out['name']}",
                        f"max abs error grew {b:.3g} → {f:.3g} (still within the policy)", baseline=b, fresh=f,
                    ))  # fmt: skip
    for key in base_by:
        if key not in fresh_by:
            result.changes.append(Change("coverage", key, "parity check in the baseline was not run", failed=True))


_LOOSER = {"atol": 1, "rtol": 1, "max_rel_l2": 1, "min_cosine": -1, "min_top1": -1}


def _compare_tolerance(key: str, old: dict[str, Any], new: dict[str, Any], result: CheckResult) -> None:
    for name, direction in _LOOSER.items():
        o, n = _num(old.get(name)), _num(new.get(name))
        if o is None or n is None or o == n:
            continue
        if (n - o) * direction > 0:
            result.changes.append(Change("accuracy", f"{key} tolerance {name}",
                                         f"policy loosened: {name} {o:g} → {n:g}", failed=True, baseline=o, fresh=n))  # fmt: skip  # noqa: E501
        else:
            result.changes.append(Change("info", f"{key} tolerance {name}", f"policy tightened: {name} {o:g} → {n:g}",
                                         baseline=o, fresh=n))  # fmt: skip


def _check_bench(fresh: dict[str, Any] | None, base: dict[str, Any] | None, result: CheckResult, where: str) -> None:
    if base is None:
        if fresh is not None:
            result.changes.append(Change("info", "bench", "the baseline has no benchmark: latency not gated"))
        return
    if fresh is None:
        result.changes.append(Change("coverage", "bench", f"{where} gates latency but this run has no benchmark "
                                     "(pass --bench)", failed=True))  # fmt: skip
        return
    b_threads = (base.get("machine") or {}).get("threads")
    f_threads = (fresh.get("machine") or {}).get("threads")
    if b_threads != f_threads:
        raise UserError(f"{where} was measured with {b_threads or 'default'} thread(s), this run with "
                        f"{f_threads or 'default'}: run `attnx bench --threads {b_threads or 0}` or refresh the "
                        "baseline with --update-baseline")  # fmt: skip
    ref_b, ref_f = base.get("reference"), fresh.get("reference")
    if not ref_b:
        raise UserError(f"{where} has no reference backend to take latency ratios to: rebuild it with a benchmark "
                        "that includes PyTorch eager")  # fmt: skip
    if ref_f != ref_b:
        raise UserError(f"this run's reference backend is {ref_f!r}, the baseline's {ref_b!r}: run the benchmark "
                        "with the PyTorch reference")  # fmt: skip
    busy = [n for n in fresh.get("notes", []) if n.startswith("the machine was busy")]
    if busy:
        result.changes.append(Change("info", "machine", f"this run: {busy[0]}"))
    stat = result.stat
    bconf = {(c["target"], c["batch"]): c for c in base.get("configs", [])}
    fconf = {(c["target"], c["batch"]): c for c in fresh.get("configs", [])}
    for (target, batch), bc in bconf.items():
        key = f"{target} batch {batch}"
        fc = fconf.get((target, batch))
        if fc is None:
            result.changes.append(Change("coverage", key, "measured in the baseline but not in this run", failed=True))
            continue
        if _shapes(bc.get("input_shape")) != _shapes(fc.get("input_shape")):
            raise UserError(f"{key} ran on inputs {_shapes(fc.get('input_shape'))} here but "
                            f"{_shapes(bc.get('input_shape'))} in {where}: bench with the baseline's --input-shape "
                            "or refresh it with --update-baseline")  # fmt: skip
        ms_stat = "p50" if stat == "paired" else stat
        b_ms, f_ms = _stat(bc, ms_stat), _stat(fc, ms_stat)
        if target == ref_b:
            result.changes.append(Change("info", key, f"reference {ms_stat} {b_ms:.3f} → {f_ms:.3f} ms "
                                         "(machine speed; other backends are judged relative to it)",
                                         baseline=b_ms, fresh=f_ms))  # fmt: skip
            continue
        b_ref, f_ref = bconf.get((ref_b, batch)), fconf.get((ref_f, batch))
        if b_ref is None or f_ref is None:
            result.changes.append(Change("coverage", key, f"no {ref_b} measurement at batch {batch} to compare with",
                                         failed=True))  # fmt: skip
            continue
        if stat == "paired" and _num(bc.get("ratio_to_reference")) and _num(fc.get("ratio_to_reference")):
            rb, rf = float(bc["ratio_to_reference"]), float(fc["ratio_to_reference"])
        else:  # a statistic's ratio over the whole run (or a record without paired ratios)
            rb, rf = b_ms / _stat(b_ref, ms_stat), f_ms / _stat(f_ref, ms_stat)
        change = rf / rb - 1.0
        text = (f"{ms_stat} {b_ms:.3f} → {f_ms:.3f} ms; {stat} ratio to {ref_b}: {rb:.3f} → {rf:.3f} "
                f"({change:+.1%}, limit +{result.max_slowdown:.0%})")  # fmt: skip
        if change > result.max_slowdown:
            result.changes.append(Change("latency", key, f"slower: {text}", failed=True, baseline=rb, fresh=rf))
        elif change < -result.max_slowdown:
            result.changes.append(Change("latency", key, f"faster: {text}; refresh with --update-baseline",
                                         baseline=rb, fresh=rf))  # fmt: skip
        else:
            result.changes.append(Change("latency", key, f"within limit: {text}", baseline=rb, fresh=rf))
    for target, batch in fconf:
        if (target, batch) not in bconf:
            result.changes.append(Change("info", f"{target} batch {batch}", "new benchmark configuration"))


def _stat(config: dict[str, Any], stat: str) -> float:
    value = _num((config.get("stats") or {}).get(f"{stat}_ms"))
    if value is None or value <= 0:
        raise UserError(f"benchmark entry {config.get('target')} batch {config.get('batch')} lacks {stat}_ms: "
                        "the file is corrupt; run `attnx bench --json` again")  # fmt: skip
    return value


def _num(x: Any) -> float | None:
    try:
        return float(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def _shapes(x: Any) -> dict[str, list[int]] | None:
    if not isinstance(x, dict):
        return None
    return {k: [int(d) for d in v] for k, v in x.items()}


# ---------------------------------------------------------------------------------------------------
# The command


def run_check(
    baseline: str | Path,
    parity_files: Sequence[str | Path] = (),
    bench_file: str | Path | None = None,
    result_file: str | Path | None = None,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    stat: str = "paired",
    update: bool = False,
) -> CheckResult:
    """Compare a fresh result with ``baseline``. The fresh result is either a record (``result_file``) or
    assembled from ``attnx parity --json`` files and an ``attnx bench --json`` file. With ``update``, the
    baseline is (re)written from the fresh result and the check passes (changes are still listed)."""
    if result_file is not None:
        if parity_files or bench_file:
            raise UserError("give either --result or --parity/--bench, not both")
        fresh = load_record(result_file, what="result")
    else:
        reports = [r for f in parity_files for r in load_parity_file(f)]
        bench = load_result(bench_file) if bench_file is not None else None
        fresh = make_record(reports, bench)
    baseline = Path(baseline)
    if update:
        old = load_record(baseline) if baseline.is_file() else None
        result = CheckResult(str(fresh.get("model")), str(baseline), stat, max_slowdown)
        if old is not None and old.get("model") == fresh.get("model"):
            try:
                result = compare_to_baseline(fresh, old, max_slowdown, stat, str(baseline))
            except UserError as exc:  # shapes or threads changed: that is what an update is for
                result.changes.append(Change("info", "baseline", f"previous baseline not comparable: {exc}"))
        for c in result.changes:
            c.failed = False  # an update accepts what changed; the listing says what that was
        write_record(baseline, fresh)
        result.updated = True
        return result
    return compare_to_baseline(fresh, load_record(baseline), max_slowdown, stat, str(baseline))


def check_table(result: CheckResult) -> Table:
    """A rich table of ``result`` for people: one row per change, failures first; the verdict is in the title."""
    from rich.table import Table

    verdict = "updated" if result.updated else ("passed" if result.passed else "FAILED")
    table = Table(
        title=f"attnx check: {result.model} against {result.baseline_path} — {verdict}",
        caption=f"latency: {result.stat} ratio to the reference, limit +{result.max_slowdown:.0%}",
    )
    for col in ("kind", "what", "change", "result"):
        table.add_column(col, overflow="fold")
    for c in sorted(result.changes, key=lambda c: (not c.failed, c.kind)):
        mark = "[bold red]FAIL[/]" if c.failed else ("[green]ok[/]" if c.kind != "info" else "info")
        table.add_row(c.kind, c.key, c.message, mark)
    return table
