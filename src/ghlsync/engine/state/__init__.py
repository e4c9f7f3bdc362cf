"""What both directions remember: the ID map, per-side sync state and the ledger over them."""
