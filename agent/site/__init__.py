"""Feature pages and the static HTML site (steer-agent export --html)."""
