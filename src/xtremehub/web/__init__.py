"""XtremeHub on the web: the REST API and the cockpit (server-rendered pages)."""
