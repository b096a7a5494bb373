"""The CI gate's records read back on the controller: table cells, JUnit properties, the summary.

Everything here reads the typed ``BaselineComparison`` each result carries (verdict.judge made it
where the item ran); nothing compares figures again.
"""

from __future__ import annotations

from typing import AbstractSet, Any, Optional, Sequence

from ..measure.results import BaselineComparison, BaselineStatus, CheckResult, check_label, round_figure, several_checks
from .key import machine_text
from .store import BaselineStore, Entry, UpdateSummary, without_libraries
from .comparison import identity_of, regressed_kinds

UPDATE_HINT = "run with --infer-baseline-update to record it"


ACROSS_HINT = ("the same hardware under other library versions: --infer-baseline-across-versions (infercheck gate "
               "--across-versions) compares with it")


def what_differs(comparison: BaselineComparison) -> str:
    """The machine-key differences of an entry not applied, and the option that applies it where only versions
    differ."""
    return "; ".join([*comparison.differences, *([ACROSS_HINT] if comparison.versions_only else [])])


def not_compared_reason(comparison: BaselineComparison) -> str:
    if comparison.status == BaselineStatus.OTHER_MACHINE:
        return (f"the entry in {comparison.file} was recorded on another machine or software stack "
                f"({what_differs(comparison)}), so it was not applied")
    return f"no entry for this item in {comparison.file}; {UPDATE_HINT}"


def status_cell(result: CheckResult) -> str:
    """A short verdict for a table cell: ``+3.1% ok``, ``REGRESSION latency +10.2%``, ``missing``, ..."""
    comparison = result.baseline
    if comparison is None:
        return "-"
    if comparison.status == BaselineStatus.MISSING:
        return "missing"
    if comparison.status == BaselineStatus.OTHER_MACHINE:
        return "other machine"
    latency = comparison.judged  # kernel time where judged on it, else the wall time as judged
    has_ratio = latency is not None and latency.ratio == latency.ratio  # NaN: too few samples for a ratio
    change = f"{latency.ratio - 1:+.1%}" if latency is not None and has_ratio else ""
    if comparison.judged_on == "kernel" and not comparison.regressions:  # a regression's kind names it
        change = f"kernel {change}".rstrip()
    if comparison.regressions:
        kinds = regressed_kinds(comparison)
        # The change shown is the latency's: beside an accuracy regression alone it read as the error's.
        shown = "" if kinds == ["accuracy"] else change
        return f"REGRESSION {' + '.join(kinds)} {shown}".rstrip()
    if comparison.improvements:
        return f"improved {change}"
    if latency is not None and not has_ratio:
        return "no latency verdict"
    if (latency is not None and latency.undecided) or comparison.accuracy_undecided:
        return f"undecided {change}".rstrip()
    return f"{change} ok".strip()


def baseline_properties(result: CheckResult, prefix: Optional[str] = None) -> list[tuple[str, Any]]:
    """The baseline's side of every compared figure, for JUnit XML, under ``prefix`` (the engine id's)."""
    comparison = result.baseline
    if comparison is None:
        return []
    prefix = (prefix or f"infercheck.{result.spec_id}") + ".baseline"
    props: list[tuple[str, Any]] = [(f"{prefix}.status", str(comparison.status)),
                                    (f"{prefix}.verdict", status_cell(result))]
    if comparison.status == BaselineStatus.FOUND and comparison.differences:  # --infer-baseline-across-versions
        props.append((f"{prefix}.across_versions", "; ".join(comparison.differences)))
    for figure, latency in (("latency", comparison.latency), ("kernel", comparison.kernel)):
        if latency is not None:
            for name in ("baseline_p50_ms", "current_p50_ms", "ratio", "ci_low", "ci_high", "p_slower", "p_faster"):
                props.append((f"{prefix}.{figure}.{name}", round_figure(getattr(latency, name))))
            props.append((f"{prefix}.{figure}.verdict", latency.verdict))
    if comparison.kernel is not None:
        props.append((f"{prefix}.judged_on", comparison.judged_on))
    if comparison.corroboration:  # a dense GPU engine's wall verdict as its kernels read it (docs/gate.md)
        props.append((f"{prefix}.corroboration", comparison.corroboration))
    for change in comparison.accuracy:
        props.append((f"{prefix}.{change.output}.{change.metric}", round_figure(change.baseline)))
    for line in comparison.regression_lines:
        props.append((f"{prefix}.regression", line))
    return props


UNMATCHED_SHOWN = 5  # entries named in the terminal's "no result" line; the rest are counted
UNMATCHED_WHY = ("a test not selected in this run, or renamed or deleted since it was blessed (its gate is gone "
                 "until it is blessed again); kept in the file")


def unmatched_heading(count: int) -> str:
    """``no result for 2 baseline entries of this machine``: the terminal's line, the reports' heading."""
    return f"no result for {count} baseline entr{'y' if count == 1 else 'ies'} of this machine"


def entry_names(entries: Sequence[Entry]) -> list[str]:
    """Each entry as its test's node id, and its check's name where the test has several (as ``who`` shows
    a result's)."""
    per_test: dict[tuple[str, str], int] = {}
    for entry in entries:
        per_test[(entry.nodeid, entry.spec_id)] = per_test.get((entry.nodeid, entry.spec_id), 0) + 1
    return [entry.nodeid + (f" ({entry.check})" if entry.check and per_test[(entry.nodeid, entry.spec_id)] > 1 else "")
            for entry in entries]


def unmatched_entries(store: Optional[BaselineStore], results: Sequence[CheckResult]) -> list[Entry]:
    """The entries of this run's machines that no result of the run matches: a test renamed or deleted since
    it was blessed, whose gate is gone without a word, or one this run did not select (``-k``, a shard)."""
    if store is None or not store.entries:
        return []
    # This machine: its hardware and device, whatever the libraries of each engine's key.
    machines = {machine_text(without_libraries(result.machine)) for result in results if result.machine}
    identities = [identity_of(result) for result in results]
    return [entry for entry in store.entries if machine_text(without_libraries(entry.machine)) in machines
            and not any(entry.identity.matches(identity) for identity in identities)]


def summary_lines(results: Sequence[CheckResult], path: Optional[str], update: Optional[UpdateSummary],
                  several: Optional[AbstractSet[str]] = None, unmatched: Sequence[Entry] = ()) -> list[str]:
    """The terminal summary's baseline section: counts, then every item that needs a reader's eye;
    ``several``: the items that ran several checks (default: as ``results`` show); ``unmatched``: the
    entries of this machine no result matched (unmatched_entries), said, never failed."""
    if not path:
        return []
    compared = [(r, r.baseline) for r in results if r.baseline and r.baseline.status == BaselineStatus.FOUND]
    missing = [r for r in results if r.baseline and r.baseline.status == BaselineStatus.MISSING]
    foreign = [(r, r.baseline) for r in results if r.baseline and r.baseline.status == BaselineStatus.OTHER_MACHINE]
    regressed = [(r, b) for r, b in compared if b.regressions]
    improved = [(r, b) for r, b in compared if b.improvements]
    undecided = [(r, b) for r, b in compared if (b.judged is not None and b.judged.undecided) or b.accuracy_undecided]
    several = several_checks(results) if several is None else several
    lines = [f"baseline {path}: {len(compared)} compared, {len(regressed)} regressed, {len(improved)} improved, "
             f"{len(missing)} missing, {len(foreign)} not applied (other machine)"
             + (f", {len(undecided)} undecided" if undecided else "")]
    across = [(r, b) for r, b in compared if b.differences]
    if across:  # --infer-baseline-across-versions: which entries were another version's
        lines.append(f"  across versions: {len(across)} compared with an entry of other library versions on this machine:")
        lines += [f"    {who(r, several)}: {'; '.join(b.differences)}" for r, b in across]
    lines += [f"  REGRESSION {who(r, several)}: {line}" for r, b in regressed for line in b.regression_lines]
    lines += [f"  improved   {who(r, several)}: {line}" for r, b in improved for line in b.improvements]
    if foreign:
        lines.append(f"  FINGERPRINT DIFFERS: {len(foreign)} entr{'y was' if len(foreign) == 1 else 'ies were'} "
                     f"recorded on another machine or software stack and NOT applied:")
        lines += [f"    {who(r, several)}: {what_differs(b)}" for r, b in foreign]
    if missing and update is None:  # while updating, the missing entries are being written
        lines.append(f"  missing (no entry; {UPDATE_HINT}):")
        lines += [f"    {who(r, several)}" for r in missing]
    if unmatched:
        named = entry_names(unmatched)
        more = f" and {len(named) - UNMATCHED_SHOWN} more" if len(named) > UNMATCHED_SHOWN else ""
        lines.append(f"  {unmatched_heading(len(named))} ({UNMATCHED_WHY}): {', '.join(named[:UNMATCHED_SHOWN])}{more}")
    return lines + (update_lines(update) if update is not None else [])


def too_few_line(count: int) -> str:
    """Why a blessing fails when passing results had too few latency samples to be blessed."""
    return (f"baseline: {count} passing result(s) not blessed, with fewer latency samples than a comparison needs "
            "(see 'not written'): rerun the blessing with more iterations (--infer-max-iters, --infer-min-time)")


def update_lines(update: UpdateSummary) -> list[str]:
    """What an update wrote, kept and refused (the session's summary and ``infercheck baseline update``)."""
    return [f"baseline updated: {len(update.written)} entries written, {update.kept} kept, "
            f"{len(update.not_written)} not written -> {update.path}"] + [f"  not written: {line}"
                                                                          for line in update.not_written]


def who(result: CheckResult, several: AbstractSet[str]) -> str:
    """The item, and which of its checks when it ran several (``several``: results.several_checks)."""
    return result.nodeid + check_label(result, several)
