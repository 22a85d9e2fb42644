"""Grafana: the dashboards (``dashboards``) and their renderer plus the Grafana-managed alert
rules (``alerting``); ``build.py`` writes the provisioned files."""
