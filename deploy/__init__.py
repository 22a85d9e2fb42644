"""Deployment config and its generators, importable from a checkout (not installed).

``deploy.prometheus`` renders the Prometheus rules and ``deploy.grafana`` the Grafana
dashboards and alert provisioning; the scripts ``deploy/prometheus/rules.py`` and
``deploy/grafana/build.py`` write the committed files.
"""
