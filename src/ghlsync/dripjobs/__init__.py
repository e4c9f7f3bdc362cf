"""The DripJobs side: inbound events from Zapier, their keys, verification and presets."""
