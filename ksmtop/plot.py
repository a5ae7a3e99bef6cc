"""`ksmtop plot`: memory over time per guest and the host's KSM saving, with event markers; when the session
has a KSM-off and a KSM-on phase, before/after bars. Needs matplotlib (pip install 'ksmtop[plot]').
No UI imports; matplotlib is imported only here, with the Agg backend (no display needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ksmtop.export import guest_columns
from ksmtop.model import Snapshot
from ksmtop.recording import Recording

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
MIB = 1024 * 1024


class PlotUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Phases:
    """The last sample with KSM off before it ran, and the last sample of the KSM-on phase that followed."""

    off: Snapshot
    on: Snapshot


def ksm_phases(snapshots: list[Snapshot]) -> Phases | None:
    off = None
    on = None
    for snapshot in snapshots:
        run = snapshot.ksm.get("run")
        if run == 0 and on is None:
            off = snapshot
        elif run == 1 and off is not None:
            on = snapshot
        elif run != 1 and on is not None:
            break
    return Phases(off, on) if off is not None and on is not None else None


def _used_bytes(snapshot: Snapshot) -> int:
    return snapshot.host.mem_total_bytes - snapshot.host.mem_available_bytes


def plot_recording(recording: Recording, out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'ksmtop[plot]'") from None
    snapshots = recording.snapshots
    start = snapshots[0].time
    elapsed = [s.time - start for s in snapshots]
    phases = ksm_phases(snapshots)
    figure = plt.figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    grid = figure.add_gridspec(2 if phases else 1, 1, height_ratios=[3, 2] if phases else [1])
    axes = figure.add_subplot(grid[0])
    header = recording.header
    axes.set_title(f"ksmtop session on {header.get('host', '?')} ({header.get('kernel', '?')})", fontsize=11)
    for pid, ticks, label in guest_columns(recording):
        points = [
            (t, g.rss_bytes / MIB)
            for t, s in zip(elapsed, snapshots, strict=True)
            for g in s.guests
            if g.pid == pid and g.start_ticks == ticks
        ]
        axes.plot([p[0] for p in points], [p[1] for p in points], linewidth=1.2, label=f"{label} RSS")
    saving = [(s.rates.saving_bytes or 0) / MIB for s in snapshots]
    axes.plot(elapsed, saving, color="black", linewidth=2.2, label="host KSM saving")
    axes.fill_between(elapsed, saving, color="black", alpha=0.08)
    span = max(elapsed[-1], 1e-9)
    markers: dict[float, list[str]] = {}
    for event in recording.events:  # events close together share one marker and one label
        x = event.time - start
        near = next((m for m in markers if abs(m - x) < span / 100), x)
        markers.setdefault(near, []).append(event.text[:40])
    for x, texts in markers.items():
        axes.axvline(x, color="tab:red", linestyle=":", linewidth=1)
        axes.annotate(
            "\n".join(texts),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize=7,
            va="top",
            ha="left",
            color="tab:red",
        )
    axes.set_xlabel("seconds since start")
    axes.set_ylabel("MiB")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if phases:
        bars = figure.add_subplot(grid[1])
        labels = ["host used", "guest RSS", "KSM saving"]
        before = [_used_bytes(phases.off), phases.off.total_guest_rss_bytes, phases.off.rates.saving_bytes or 0]
        after = [_used_bytes(phases.on), phases.on.total_guest_rss_bytes, phases.on.rates.saving_bytes or 0]
        positions = range(len(labels))
        bars.bar([p - 0.2 for p in positions], [b / MIB for b in before], width=0.4, label="KSM off", color="grey")
        bars.bar([p + 0.2 for p in positions], [a / MIB for a in after], width=0.4, label="KSM on", color="tab:green")
        bars.set_xticks(list(positions), labels)
        bars.set_ylabel("MiB")
        bars.set_title(
            f"before (KSM off, +{phases.off.time - start:.0f} s) and after (KSM on, +{phases.on.time - start:.0f} s)",
            fontsize=10,
        )
        bars.legend(fontsize=8)
        bars.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=DPI, format="png")
    plt.close(figure)
    return out
