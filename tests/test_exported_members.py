"""The public API is what the package `__init__`s export; pin it so changes are deliberate."""

import ghlsync
import ghlsync.ghl


def test_version_is_exported() -> None:
    assert ghlsync.__all__ == ["__version__"]
    assert ghlsync.__version__


def test_ghl_exports_resolve() -> None:
    names = ghlsync.ghl.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(ghlsync.ghl, name) is not None, name
    assert {"GHLClient", "TokenVault", "MemoryRateLimiter", "WebhookVerifier"} <= set(names)
