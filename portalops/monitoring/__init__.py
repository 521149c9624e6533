"""The controller's view of the monitoring on mon1: ``portalops status`` and ``portalops deadman``.

Prometheus and Alertmanager are read through their HTTP APIs (JSON only, never the text formats).
"""
