"""Prometheus: the recording and alerting rules (``alert_rules``); ``rules.py`` writes them."""
