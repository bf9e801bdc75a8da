"""Build stage: a ClusterPlan becomes Dagster definitions (job, ops, config, tags, triggers,
sensors, lineage). Everything here may import Dagster; the step body it calls does not."""
