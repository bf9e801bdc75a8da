"""The built-in satellites, one per file; the registry imports every module in this folder."""
