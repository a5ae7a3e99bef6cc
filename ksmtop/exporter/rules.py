"""Sample Prometheus alert rules for what operators of KSM hosts ask (``ksmtop exporter --rules`` prints them).

docs/alerts.yml is a copy (a unit test keeps them equal), checked with ``promtool check rules`` and tested with
``promtool test rules docs/alerts.test.yml`` (tests/integration/test_prometheus_rules.py runs both). Thresholds
are starting points: copy the file and tune them to the fleet.
"""

from __future__ import annotations

RULES = """\
# Alert rules for ksmtop's exporter (ksmtop exporter --rules). Thresholds are starting points: tune them.
# Every expression joins figures of one exporter by (instance, job), the labels Prometheus gives a target.
groups:
  - name: ksmtop-ksm
    rules:
      - alert: KsmdBurningCpuForLittleProfit
        # ksmd has used more than 5% of a core for 30 minutes while KSM saves under 1% of the host's memory.
        expr: |
          rate(ksmtop_ksmd_cpu_seconds_total[10m]) > 0.05
          and on (instance, job)
          ksmtop_ksm_general_profit_bytes < 0.01 * ksmtop_host_memory_total_bytes
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: "ksmd burns CPU for little profit on {{ $labels.instance }}"
          description: >-
            ksmd uses {{ $value | humanizePercentage }} of a core while general_profit is under 1% of memory.
            Lower pages_to_scan, raise sleep_millisecs, try smart_scan=1 or the scan-time advisor, or stop KSM.

      - alert: KsmOffWhileMemoryShort
        # KSM is not running, guests are there, and less than 10% of the memory is available, for 15 minutes.
        expr: |
          ksmtop_ksm_run != 1
          and on (instance, job)
          ksmtop_host_memory_available_bytes < 0.10 * ksmtop_host_memory_total_bytes
          and on (instance, job)
          count by (instance, job) (ksmtop_guest_info) > 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "KSM is off while memory is short on {{ $labels.instance }}"
          description: >-
            KSM run={{ $value }} and under 10% of the memory is available. Identical guests could share
            memory: set run=1 (ksmtop's tunables panel, or echo 1 > /sys/kernel/mm/ksm/run).

      - alert: KsmUnmergeDebtExceedsAvailableMemory
        # If every merged page were unmerged (run=2, a reboot of KSM, guests rewriting their memory), the host
        # would need more memory than it has available: it would swap or the OOM killer would act.
        expr: |
          ksmtop_ksm_unmerge_debt_bytes > on (instance, job) ksmtop_host_memory_available_bytes
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: "KSM unmerge debt exceeds available memory on {{ $labels.instance }}"
          description: >-
            Unmerging everything would need {{ $value | humanize1024 }}B, more than MemAvailable. This host
            relies on KSM to hold its guests: do not set run=2, and keep guests from diverging.

      - alert: KsmGuestStoppedMerging
        # A guest that had more than 64 MiB merged within the last hour has lost 90% of it while KSM runs.
        expr: |
          ksmtop_guest_merged_bytes < 0.1 * max_over_time(ksmtop_guest_merged_bytes[1h])
          and max_over_time(ksmtop_guest_merged_bytes[1h]) > 64 * 1024 * 1024
          and on (instance, job)
          ksmtop_ksm_run == 1
        for: 15m
        labels:
          severity: info
        annotations:
          summary: "guest {{ $labels.guest }} on {{ $labels.instance }} stopped merging"
          description: >-
            {{ $labels.guest }} keeps {{ $value | humanize1024 }}B merged, under 10% of what it had within the
            hour. Its memory changed (a workload rewrote it) or stopped being mergeable (mem-merge=off,
            hugepages): ksmtop's details panel says which.

  - name: ksmtop-exporter
    rules:
      - alert: KsmtopExporterSamplesStale
        # The exporter answers scrapes but its sampling thread has not produced a sample for 5 intervals.
        expr: |
          time() - ksmtop_exporter_last_sample_timestamp_seconds > 5 * ksmtop_exporter_interval_seconds
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "ksmtop exporter on {{ $labels.instance }} serves an old sample"
          description: "The last sample is {{ $value | humanizeDuration }} old; see the exporter's log."
"""
