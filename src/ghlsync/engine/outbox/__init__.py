"""The write-back outbox: durable, at-least-once delivery of write-backs to DripJobs."""
