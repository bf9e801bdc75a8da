"""Schedules and sensors: triggers, deadlines (SLA urgency) and the SLA-breach job."""
