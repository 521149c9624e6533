"""`portalops audit`: Lynis, ssh-audit and testssl.sh results as one report."""
