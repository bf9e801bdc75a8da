"""The resolve stage: a ClusterPlan and the deployment -> what every run of the cluster gets (no Dagster)."""
