"""The demo: a realistic DripJobs event stream pushed through the whole pipeline."""
