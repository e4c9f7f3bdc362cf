"""DripJobs → GHL: map, diff against the last-synced state, plan the fewest GHL calls, record."""
