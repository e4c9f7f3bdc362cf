"""GHL → DripJobs: a GHL event becomes a write-back decision (or a kept change, or nothing)."""
