"""The guest lab: a small guest image built from the host's packages, and qemu guests with a guest agent.

No Textual or Rich imports here: the TUI, the CLI and the tests all drive the lab through this API.
"""

from ksmtop.lab.guests import GuestStatus, Lab, LabGuest
from ksmtop.lab.image import LabImage, build_image
from ksmtop.lab.paths import LabError
from ksmtop.lab.workloads import WORKLOADS, Workload, WorkloadRun, WorkloadState, start_workload

__all__ = [
    "WORKLOADS",
    "GuestStatus",
    "Lab",
    "LabError",
    "LabGuest",
    "LabImage",
    "Workload",
    "WorkloadRun",
    "WorkloadState",
    "build_image",
    "start_workload",
]
