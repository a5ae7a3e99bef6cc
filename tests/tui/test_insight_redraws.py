"""The selected guest's diagnosis: the first one is drawn as soon as it lands, a fresher one with the next sample
(drawing the screen a second time each second for it cost a fifth of a pass per second)."""

from __future__ import annotations

from ksmtop.diagnose import Diagnosis
from ksmtop.tui.insight import InsightController


def test_only_a_guests_first_diagnosis_redraws_at_once():
    redraws: list[int] = []
    insight = InsightController(app=None, source=None, changed=lambda: redraws.append(1))  # type: ignore[arg-type]
    first = (Diagnosis(pid=42, merged_fraction=0.1, reasons=()), None)
    later = (Diagnosis(pid=42, merged_fraction=0.9, reasons=()), None)
    insight._landed(42, first)
    assert redraws == [1] and insight.text_for(42).endswith("10% of its mergeable memory is merged")
    insight._landed(42, later)
    assert redraws == [1]  # drawn by the next sample's redraw, which reads text_for
    assert insight.text_for(42).endswith("90% of its mergeable memory is merged")
    insight._landed(7, first)  # another guest: its first answer
    assert redraws == [1, 1]
