"""Clusters written in Python: the objects (api, model), their YAML document form, call sites."""
