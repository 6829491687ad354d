"""The operator's retention charts in one PNG (`hub analytics report --format png`): the cohort retention heatmap,
the segment sizes, and the model's expected against actual repeat purchases per week. matplotlib is the `plots`
extra: imported here only, so the hub runs without it."""

from __future__ import annotations

from pathlib import Path

from hub.retention.report import Report, WeeklyCheck


def draw(found: Report, check: WeeklyCheck | None, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (heat, sizes, weekly) = plt.subplots(3, 1, figsize=(10, 14), layout="constrained")
    figure.suptitle(f"{title}: {found.start.isoformat()} to {found.end.isoformat()}")

    shown = [c for c in found.cohorts if c.size]  # suppressed (None) and empty cohorts have no row
    width = max((len(c.retained or []) for c in shown), default=0)
    grid = np.full((max(len(shown), 1), max(width, 1)), np.nan)
    for row, cohort in enumerate(shown):
        for column, share in enumerate(cohort.retained or []):
            grid[row, column] = share * 100
    image = heat.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    heat.set_title("Cohorts: % of each first-purchase month buying again, months later")
    heat.set_yticks(range(len(shown)), [f"{c.month:%Y-%m} (n={c.size})" for c in shown])
    heat.set_xticks(range(width), [str(m + 1) for m in range(width)])
    heat.set_xlabel("months after the first purchase")
    figure.colorbar(image, ax=heat, label="% retained")
    if not shown:
        heat.text(0.5, 0.5, "no cohort of 10 members or more", ha="center", va="center", transform=heat.transAxes)

    names = [s.segment.replace("_", " ") for s in found.segments]
    counts = [s.members or 0 for s in found.segments]
    bars = sizes.barh(names, counts, color="tab:blue")
    for bar, segment in zip(bars, found.segments, strict=True):
        label = "<10" if segment.suppressed else str(segment.members or 0)
        sizes.annotate(label, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                       textcoords="offset points", va="center")  # fmt: skip
    sizes.invert_yaxis()
    sizes.set_title("Members per segment (current scores)")
    sizes.set_xlabel("members")

    weekly.set_title("Repeat purchases per week: the model's expectation against what happened")
    if check is not None and check.weeks:
        weekly.plot(check.weeks, check.actual, label="actual", color="tab:gray")
        weekly.plot(check.weeks, check.expected, label="expected (BG/NBD)", color="tab:orange")
        weekly.legend()
        weekly.set_ylabel("repeat purchase days")
    else:
        weekly.text(0.5, 0.5, "no fit yet: run `hub analytics score`", ha="center", va="center",
                    transform=weekly.transAxes)  # fmt: skip
    figure.savefig(path, dpi=100)
    plt.close(figure)
