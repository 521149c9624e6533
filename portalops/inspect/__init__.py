"""``portalops inspect``: the government-website inspection self-check (issue 16).

The national indicators for government websites (「政府网站与政务新媒体检查指标」, 2019) fail a site
outright on a few *single-veto* items: not updated, sections not updated or blank, serious errors
(sensitive content, leaked personal data, falsified dates). This package reads each site of
``portal_sites`` the way an inspector does, through the public edge, plus WordPress' REST API for
what is exact there (every published post's date and category, every page), and says for each
item pass / at risk / fail / unknown with its evidence and margin.

Pure parts (``pages``, ``personal``, ``words``, ``veto``) take text and dates and return findings;
``edge`` talks to the sites, ``site`` puts them together. Two items come from elsewhere: the 7-day
availability from the monitoring's Prometheus (``availability``, through :mod:`portalops.monitoring`),
the enquiry section's messages from the source the inventory names (``interaction``).
"""
