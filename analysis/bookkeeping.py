"""What a report says about its inputs before any result: trial statuses, skipped inputs, repeats, seed checks
and the code the trials ran (uncommitted changes flagged). Each function returns Markdown lines.
"""

from __future__ import annotations

import pandas as pd

from analysis import tables
from analysis.aggregate import trial_table
from mat.spec.records import STATUSES

# Display names of mat.spec.records.STATUSES, in the order the report lists them.
STATUS_LABELS = {"SUCCEEDED": "finished", "RUNNING": "running", "FAILED": "failed",
                 "INTERRUPTED": "interrupted"}
assert set(STATUS_LABELS) == set(STATUSES), "a record status without a display name"
MAX_LISTED = 50


def status_section(df: pd.DataFrame, counts: dict[str, int]) -> list[str]:
    """The trials per status and the unfinished ones with their errors."""
    rows = [(f"{label} ({s})", counts.get(s, 0)) for s, label in STATUS_LABELS.items()]
    rows += [(s, n) for s, n in counts.items() if s not in STATUS_LABELS]
    rows.append(("total", sum(counts.values())))
    lines = ["## Trials", "", tables.plain_markdown(pd.DataFrame(rows, columns=["status", "trials"])),
             "Only finished (SUCCEEDED) trials enter the tables and figures; running, failed and interrupted "
             "trials are counted here and never as complete.", ""]
    open_trials = trial_table(df)
    open_trials = open_trials[open_trials["status"] != "SUCCEEDED"]
    if len(open_trials):
        columns = ["experiment", "trial", "task", "arm", "status", "error"]
        shown = open_trials.head(MAX_LISTED)[columns].fillna("")
        shown["error"] = shown["error"].astype(str).str.slice(0, 160)
        more = f" (first {MAX_LISTED} of {len(open_trials)})" if len(open_trials) > MAX_LISTED else ""
        lines += [f"### Unfinished trials{more}", "", tables.plain_markdown(shown)]
    return lines


def listed(title: str, items: list[str], none: str = "None.", about: str = "") -> list[str]:
    """A section ``## title (n)``: ``about``, then the items (the first :data:`MAX_LISTED`), or ``none``."""
    lines = [f"## {title} ({len(items)})", ""] + ([about, ""] if about else [])
    more = [f"- ... and {len(items) - MAX_LISTED} more"] if len(items) > MAX_LISTED else []
    return lines + (items[:MAX_LISTED] or [none]) + more + [""]


def repeats_section(repeats: pd.DataFrame) -> list[str]:
    """The trials set aside as repeats of a configuration and seed."""
    items = [f"- {r.method}, {r.task}, seed {r.seed}: kept `{r.kept_source}` ({r.kept_status}); set aside "
             f"`{r.repeat_source}` ({r.repeat_status})" for r in repeats.itertuples()]
    return listed("Repeated trials", items, about="Two finished trials of one method, task, model, "
                  "configuration (run settings included) and seed count once: the newest.")


def repeat_lines(repeats: pd.DataFrame) -> list[str]:
    """One line per repeat, for ``--strict``'s refusal."""
    return [f"{r.method}, {r.task}, seed {r.seed}: run twice ({r.kept_source}, {r.repeat_source})"
            for r in repeats.itertuples()]


def dirty_trials(df: pd.DataFrame) -> pd.DataFrame:
    """The trials whose records say they ran from a checkout with uncommitted changes to tracked files
    (``git_dirty``): ``experiment, trial, source, code.git_sha, code.git_diff_sha``."""
    one = df.drop_duplicates(["experiment", "trial"])
    cols = ["experiment", "trial", "source", "code.git_sha", "code.git_diff_sha"]
    if "code.git_dirty" not in one.columns:
        return pd.DataFrame(columns=cols)
    dirty = one[one["code.git_dirty"].astype(object).eq(True)]
    return dirty.reindex(columns=cols).reset_index(drop=True)


def code_section(df: pd.DataFrame) -> list[str]:
    """The trials that ran from a modified tree (each with its commit and its diff's hash), and how many
    records predate the check."""
    one = df.drop_duplicates(["experiment", "trial"])
    dirty = dirty_trials(df)
    unknown = int(one["code.git_dirty"].isna().sum()) if "code.git_dirty" in one.columns else len(one)
    items = [f"- `{r['source']}`: commit {str(r['code.git_sha'])[:7]} with uncommitted changes (diff sha256 "
             f"{str(r['code.git_diff_sha'])[:12]})" for _i, r in dirty.iterrows()]
    about = ("Trials whose records say they ran from a checkout whose tracked files differed from the "
             "commit they name (git_dirty): their numbers are not reproducible from that commit alone; the "
             "diff's hash tells edits apart.")
    if unknown:
        about += f" {unknown} of the {len(one)} records predate this check and do not say."
    return listed("Trials run from uncommitted code", items, about=about)
