"""ghlsync: keeps DripJobs and a GoHighLevel sub-account in sync."""

__version__ = "0.1.0"

__all__ = ["__version__"]
