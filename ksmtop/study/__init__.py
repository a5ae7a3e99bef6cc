"""`ksmtop study`: the paper's KSM study reproduced on lab guests (docs/study.md).

plan (the matrix of runs), runner (guests, workloads, KSM, measurement), measure (sampling and windows),
knobs (KnobSnapshot: every KSM knob saved and restored), preflight (who else uses KSM), rows, model (the capacity
model, pure), checks (the paper's findings), report (results.json/csv, report.md), figures (PNG), cli.
Only cli imports Rich; nothing here imports Textual.
"""
