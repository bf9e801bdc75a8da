"""What happens inside a step: items, secrets, checkpoints, per-item retries. No Dagster here."""
