"""Figures: the *_info numbers by hand, and the drawn artists equal them (no image diffs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import aggregate as agg
from analysis import plots
from analysis.figure_style import colours_for
from analysis.load import COLUMNS
from tests.helpers import REPO

# Per-seed dev metrics (5 seeds) for two methods; MRPC has two metrics that Figure 3 averages.
VALUES = {
    ("cola", "vanilla"): {"mcc": [50.0, 58.0, 59.0, 60.0, 61.0]},  # 50 lies below q1 - 1.5 IQR = 55
    ("cola", "mat"): {"mcc": [60.0, 61.0, 62.0, 63.0, 64.0]},
    ("rte", "vanilla"): {"accuracy": [66.0, 67.0, 68.0, 69.0, 70.0]},
    ("rte", "mat"): {"accuracy": [70.0, 71.0, 72.0, 74.0, 78.0]},
    ("sst2", "vanilla"): {"accuracy": [92.0, 92.5, 93.0, 93.5, 94.0]},
    ("sst2", "mat"): {"accuracy": [93.0, 93.0, 93.5, 94.0, 94.5]},
    ("mrpc", "vanilla"): {"accuracy": [86.0, 86.0, 87.0, 88.0, 88.0], "f1": [90.0, 90.0, 91.0, 92.0, 92.0]},
    ("mrpc", "mat"): {"accuracy": [88.0, 89.0, 90.0, 91.0, 92.0], "f1": [90.0, 91.0, 92.0, 93.0, 94.0]},
}


def tidy() -> pd.DataFrame:
    out = []
    for (task, method), metrics in VALUES.items():
        for metric, values in metrics.items():
            for seed, v in enumerate(values, 1):
                out.append(dict(experiment="e", trial=f"{task}-{method}-{seed}", method=method, arm=method, task=task, model="m",
                                seed=seed, status="SUCCEEDED", error=None, config="c", source="s", kind="best",
                                step=100.0, epoch=1.0, split="dev", metric=metric, value=v))
    return pd.DataFrame(out)[list(COLUMNS)]


@pytest.fixture(scope="module")
def box() -> plots.BoxInfo:
    return plots.seed_box_info(agg.trial_scores(tidy()))


def test_box_info_by_hand(box: plots.BoxInfo) -> None:
    s = box.stats.set_index(["task", "arm"])
    # MRPC/mat: scores (88+90)/2 ... (92+94)/2 = 89, 90, 91, 92, 93
    assert s.loc[("mrpc", "mat"), ["n", "median", "q1", "q3", "whislo", "whishi"]].tolist() == [5, 91, 90, 92, 89, 93]
    # MRPC/vanilla: 88, 88, 89, 90, 90
    assert s.loc[("mrpc", "vanilla"), ["median", "q1", "q3"]].tolist() == [89, 88, 90]
    # CoLA/vanilla: q1 58, q3 60, IQR 2: 50 is an outlier, the lower whisker ends at 58
    assert s.loc[("cola", "vanilla"), ["median", "q1", "q3", "whislo", "whishi"]].tolist() == [59, 58, 60, 58, 61]
    # RTE/mat: 70, 71, 72, 74, 78 -> q1 71, q3 74, upper fence 78.5 keeps 78
    assert s.loc[("rte", "mat"), ["median", "q1", "q3", "whishi"]].tolist() == [72, 71, 74, 78]
    assert box.panels == [["cola", "rte"], ["sst2", "mrpc"]]  # the two y-ranges, GLUE order within
    assert box.arms == ["vanilla", "mat"]


def test_drawn_boxes_equal_the_info(box: plots.BoxInfo) -> None:
    before = plt.get_fignums()
    fig = plots.seed_box_plot(box)
    assert plt.get_fignums() == before  # not registered with pyplot: nothing to show or leak
    assert len(fig.axes) == 2
    drawn = plots.box_artist_stats(fig)
    stats = box.stats.set_index(["task", "arm"])
    assert len(drawn) == len(stats) == 8
    for row in drawn.itertuples():
        task = box.panels[row.panel][row.position]
        method = box.arms[row.hue]
        exp = stats.loc[(task, method)]
        assert (row.median, row.q1, row.q3) == pytest.approx((exp["median"], exp["q1"], exp["q3"])), (task, method)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CoLA", "RTE"]
    cont = ax.containers[0]  # vanilla in the CoLA/RTE panel; whiskers come in (low, high) pairs per box
    whisk = [w.get_ydata() for w in cont.whiskers]
    assert list(whisk[0]) == [58.0, 58.0] and list(whisk[1]) == [60.0, 61.0]
    assert [list(f.get_ydata()) for f in cont.fliers][0] == [50.0]
    # separate y-ranges: the low panel's y-limits do not reach the high panel's values
    assert fig.axes[0].get_ylim()[1] < 80 < fig.axes[1].get_ylim()[0]


def test_ablation_info_and_plot() -> None:
    scores = pd.DataFrame({
        "task": ["cola"] * 6, "metric": "score", "split": "dev", "param.lambda_s": [0.1, 0.1, 1.0, 1.0, 10.0, 10.0],
        "value": [60.0, 62.0, 61.0, 61.0, 58.0, 62.0],
    })
    info = plots.ablation_info(scores, "lambda_s")
    assert info[["setting", "n", "mean"]].values.tolist() == [[0.1, 2, 61.0], [1.0, 2, 61.0], [10.0, 2, 60.0]]
    assert info["std"].tolist() == pytest.approx([np.sqrt(2), 0.0, np.sqrt(8)])
    fig = plots.ablation_plot(info, "lambda_s")
    ax = fig.axes[0]
    line = ax.lines[0]
    assert list(line.get_xdata()) == [0.1, 1.0, 10.0] and list(line.get_ydata()) == [61.0, 61.0, 60.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "1", "10"]


def test_learning_curve_info() -> None:
    df = tidy().assign(kind="eval")
    two_steps = pd.concat([df.assign(step=100.0), df.assign(step=200.0, value=df["value"] + 1.0)])
    info = plots.learning_curve_info(two_steps)
    mrpc = info[(info["task"] == "mrpc") & (info["arm"] == "mat")]
    assert mrpc[["step", "n", "mean"]].values.tolist() == [[100.0, 5, 91.0], [200.0, 5, 92.0]]
    assert mrpc["std"].tolist() == pytest.approx([np.std([89, 90, 91, 92, 93], ddof=1)] * 2)
    fig = plots.learning_curve_plot(info)
    assert sum(ax.get_visible() for ax in fig.axes) == 4
    assert sum(len(ax.lines) for ax in fig.axes) == 8  # 4 tasks x 2 methods


def test_hparam_info_only_searched_numeric_params() -> None:
    scores = pd.DataFrame({
        "task": "rte", "method": "mat", "arm": "mat", "split": "dev", "metric": "score", "value": [70.0, 71.0, 72.0],
        "param.learning_rate": [1e-5, 2e-5, 3e-5], "param.batch": [32, 32, 32], "param.seed": [1, 2, 3],
        "param.sampler": ["sgld", "adam", "sgld"],
    })
    assert plots.searched_params(scores) == ["learning_rate"]
    info = plots.hparam_info(scores)
    assert info[["param", "setting", "value", "delta"]].values.tolist() == [
        ["learning_rate", 1e-5, 70.0, -1.0], ["learning_rate", 2e-5, 71.0, 0.0], ["learning_rate", 3e-5, 72.0, 1.0]]
    fig = plots.hparam_plot(info)
    assert fig.axes[0].collections[0].get_offsets().shape == (3, 2)
    assert list(fig.axes[0].lines[0].get_ydata()) == [-1.0, 0.0, 1.0]  # the method's mean per setting
    # two arms: one collection each, in arm order (the baseline first), holding its trials in its colour
    two = pd.concat([info.assign(arm="mat"), info.assign(arm="vanilla", delta=info["delta"] * 2)])
    ax = plots.hparam_plot(two.iloc[[3, 0, 4, 1, 5, 2]]).axes[0]
    assert [c.get_offsets()[:, 1].tolist() for c in ax.collections] == [[-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    colours = colours_for(["vanilla", "mat"])
    assert [tuple(c.get_facecolor()[0][:3]) for c in ax.collections] == [colours["vanilla"], colours["mat"]]


def test_save_figure_png_and_pdf(tmp_path: Path, box: plots.BoxInfo) -> None:
    paths = plots.save_figure(plots.seed_box_plot(box), tmp_path / "fig3")
    assert [p.name for p in paths] == ["fig3.png", "fig3.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_split_panels_at_the_widest_gap() -> None:
    med = pd.Series({"cola": 60.0, "rte": 72.0, "sst2": 93.0, "qnli": 91.0, "wnli": 56.0})
    assert plots.split_panels(med) == [["cola", "rte", "wnli"], ["sst2", "qnli"]]
    assert plots.split_panels(med, n_panels=1) == [["cola", "sst2", "qnli", "rte", "wnli"]]


def test_a_long_legend_wraps_inside_the_figure() -> None:
    """Seven rungs on one task: the legend wraps into rows and stays inside the figure (it ran off both sides
    of the component study's box plot when it was one row)."""
    assert plots.legend_columns(["a" * 10] * 7, 5.0) == 3  # 0.07 * 10 + 0.6 = 1.3 in an entry
    assert plots.legend_columns(["x" * 60], 2.0) == 1 and plots.legend_columns([], 5.0) == 1
    names = ["vanilla", "inner_steps", "sampling", "dropout_consistency", "mat", "mat_visible_delta", "r3f"]
    rows = [dict(experiment="e", trial=f"{m}-{s}", method=m, arm=m, task="stsb", model="m", seed=s, status="SUCCEEDED",
                 error=None, config="c", source="s", kind="best", step=1.0, epoch=1.0, split="dev", metric=metric,
                 value=80.0 + i + s) for i, m in enumerate(names) for s in (1, 2) for metric in ("pearson", "spearman")]
    info = plots.seed_box_info(agg.trial_scores(pd.DataFrame(rows)[list(COLUMNS)]))
    fig = plots.seed_box_plot(info)
    fig.canvas.draw()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)
    assert box.y0 >= fig.axes[0].get_window_extent().y1, "the legend sits above the axes"
    assert len(legend.get_texts()) == 7 and legend._ncols < 7


def test_boxes_of_an_arm_missing_from_a_task_keep_their_places() -> None:
    """MAT has no CoLA scores and vanilla no SST-2 scores: each box is read back as its own (task, arm), at its
    task's position and with its own numbers, also in the SST-2 panel where only MAT is drawn."""
    values = {k: v for k, v in VALUES.items() if k[0] in ("cola", "rte", "sst2")}
    del values[("cola", "mat")], values[("sst2", "vanilla")]
    rows = [dict(experiment="e", trial=f"{t}-{m}-{s}", method=m, arm=m, task=t, model="m", seed=s, status="SUCCEEDED",
                 error=None, config="c", source="s", kind="best", step=1.0, epoch=1.0, split="dev", metric=metric, value=v)
            for (t, m), metrics in values.items() for metric, vs in metrics.items() for s, v in enumerate(vs, 1)]
    info = plots.seed_box_info(agg.trial_scores(pd.DataFrame(rows)[list(COLUMNS)]))
    assert info.panels == [["cola", "rte"], ["sst2"]] and info.arms == ["vanilla", "mat"]
    drawn = plots.box_artist_stats(plots.seed_box_plot(info)).sort_values(["panel", "position", "hue"])
    # (panel, task position, arm index, median, q1, q3):
    # CoLA/vanilla 59, 58, 60; RTE/vanilla 68, 67, 69; RTE/mat 72, 71, 74; SST-2/mat 93.5, 93, 94
    assert drawn[["panel", "position", "hue", "median", "q1", "q3"]].values.tolist() == [
        [0, 0, 0, 59.0, 58.0, 60.0], [0, 1, 0, 68.0, 67.0, 69.0], [0, 1, 1, 72.0, 71.0, 74.0],
        [1, 0, 1, 93.5, 93.0, 94.0]]
    # two arms in a task: boxes 0.4 wide, centred 0.2 left and right of the task's x (CoLA's vanilla box keeps
    # its place); a panel where no task has two arms draws each box whole, at the task's x
    assert drawn["x"].tolist() == pytest.approx([-0.2, 0.8, 1.2, 0.0])


def test_arm_colours_and_the_axes_look() -> None:
    """The arm colours are matplotlib's tab10 in order, again from the 11th; each new axes has a white
    background, light grey grid lines under the data and light grey spines (set on the axes, not rcParams)."""
    import matplotlib as mpl
    from matplotlib.colors import to_rgb

    from analysis.figure_style import colours_for

    colours = colours_for([f"arm{i}" for i in range(12)])
    assert colours["arm0"] == to_rgb("#1f77b4") and colours["arm1"] == to_rgb("#ff7f0e")
    assert colours["arm10"] == colours["arm0"] and colours["arm11"] == colours["arm1"]
    assert len(set(list(colours.values())[:10])) == 10
    before = dict(mpl.rcParams)
    fig, axes = plots.new_figure(1, 2)
    assert dict(mpl.rcParams) == before
    for ax in axes.flat:
        assert to_rgb(ax.get_facecolor()) == (1.0, 1.0, 1.0) and ax.get_axisbelow() is True
        grid = ax.yaxis.get_gridlines()[0]
        assert grid.get_visible() and to_rgb(grid.get_color()) == (0.8, 0.8, 0.8)
        assert {to_rgb(s.get_edgecolor()) for s in ax.spines.values()} == {(0.8, 0.8, 0.8)}


def test_the_report_modules_import_neither_seaborn_nor_scipy_stats() -> None:
    """Every figure is matplotlib alone and every test scipy.special alone (each would cost the report about
    0.7 s of imports): importing the report, and every module that draws, in a fresh interpreter leaves seaborn
    and scipy.stats out of ``sys.modules``."""
    code = ("import sys\nimport analysis.report, analysis.__main__, analysis.benchmark_page, "
            "analysis.ladder_report, analysis.telemetry, analysis.seed_pairs, analysis.plots\n"
            "print(sorted(m for m in ('seaborn', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_searched_params_skips_flags_constants_and_text() -> None:
    """A numeric parameter with two settings is searched; a flag (True/False), a constant, text and a
    parameter missing from all but one trial are not; numbers written as text count as numbers."""
    scores = pd.DataFrame({
        "param.learning_rate": [1e-5, 2e-5, 1e-5, 2e-5], "param.adv_init": [True, False, True, False],
        "param.epochs": [3, 3, 3, 3], "param.sampler": ["sgld", "adam", "sgld", "adam"],
        "param.k": [None, None, 2.0, None], "param.eps": ["1e-5", "1e-4", "1e-5", None],
        "param.seed": [1, 2, 3, 4], "value": [1.0, 2.0, 3.0, 4.0],
    })
    assert plots.searched_params(scores) == ["learning_rate", "eps"]
