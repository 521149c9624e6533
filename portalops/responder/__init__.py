"""The responder: Alertmanager's webhook receiver that opens the incident and starts the runbook.

An alert becomes one incident per fingerprint (:mod:`.incidents`), detected at the alert's own
``startsAt``, with its level's deadlines on the working calendar; the duty contacts are told through
``portalops_notify``; the runbook the alert names runs unattended where the configuration allows
(:mod:`.runner`: a ``portalops runbook run --resume INCIDENT --unattended`` subprocess under the
engine's own lock, which declines every destructive act). :mod:`.server` is the HTTP side.
"""
