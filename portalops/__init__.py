"""portalops: operations suite for a county government web portal."""

__version__ = "0.1.0"
