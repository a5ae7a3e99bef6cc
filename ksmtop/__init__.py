"""ksmtop: top for memory deduplication (KSM) on KVM hosts."""

__version__ = "0.1.0"
