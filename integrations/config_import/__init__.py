"""Moving from Grafana OnCall or PagerDuty: read their configuration
(``oncall``, ``pagerduty``), plan it in triage's terms (``plan``), write it
(``apply``). The command is ``manage.py import_config``; docs/moving.md maps
the concepts."""
