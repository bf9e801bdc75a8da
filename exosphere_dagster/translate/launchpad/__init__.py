"""The Launchpad: each satellite's run config (fields) and what a launch may change (edits)."""
