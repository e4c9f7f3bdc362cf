"""The durable queue: inbox, work rows, claims and leases, dead letters, queue status."""
