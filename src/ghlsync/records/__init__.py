"""The unified record: one person as DripJobs and GHL see them, and everything ghlsync did.

`lookup(engine, config, query)` finds who QUERY (a DripJobs customer id, a GHL contact id, an
email or a phone) is; one match gives its record, several are listed, never guessed.
`ghlsync record QUERY` and `GET /api/records/{query}` show the same data. See `docs/record.md`.
"""

from ghlsync.records._lookup import LookupResult, lookup

__all__ = ["LookupResult", "lookup"]
