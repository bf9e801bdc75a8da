"""Every built-in satellite that holds a secret fixes what it acts on (issue: what a launcher may
change): a run's launcher can never point the cluster's credentials at another bucket, table,
log group or account. The table is the contract; a new target field must be added here."""

import pytest

from satellite_ops.launch import holds_secret, launch_fields
from satellite_ops.registry import default_registry

TARGETS = {
    "satellite/exospherehost/delete-file-from-s3": {"bucket", "file-path"},
    "satellite/exospherehost/get-files-from-s3": {"bucket", "prefix"},
    "satellite/exospherehost/send-logs-to-new-relic": {"account-id"},
    "satellite/exospherehost/send-logs-to-cloudwatch": {"log-group", "log-stream"},
    "satellite/exospherehost/send-logs-to-kusto": {"database", "table"},
}


@pytest.mark.parametrize(("uses", "targets"), sorted(TARGETS.items()))
def test_targets_of_a_satellite_holding_a_secret_are_fixed(uses, targets):
    model = default_registry().get(uses).config_model
    assert any(holds_secret(f.annotation) for f in model.model_fields.values())
    fields = launch_fields(model)
    assert targets <= set(fields.fixed), f"{uses}: {sorted(targets - set(fields.fixed))} editable"
    opted = launch_fields(model, opted_in=sorted(targets))
    assert targets <= set(opted.editable) and not targets & set(opted.fixed)


def test_destinations_of_the_log_sinks_are_never_run_config():
    """Where a sink sends its secret (endpoint, cluster URI, region) is not even shown."""
    for uses, hidden in {
        "satellite/exospherehost/send-logs-to-otlp": {"endpoint"},
        "satellite/exospherehost/send-logs-to-kusto": {"cluster-uri"},
        "satellite/exospherehost/send-logs-to-cloudwatch": {"endpoint-url", "region"},
    }.items():
        fields = launch_fields(default_registry().get(uses).config_model)
        assert not hidden & (set(fields.editable) | set(fields.fixed)), uses
