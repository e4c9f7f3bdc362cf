"""The receiver's public names: what other areas and users may import."""

import ghlsync.dripjobs
import ghlsync.server


def test_dripjobs_exports() -> None:
    assert ghlsync.dripjobs.__all__ == [
        "DEFAULT_TOLERANCE_SECONDS",
        "BodyError",
        "InboundVerifier",
        "VerificationError",
        "Verified",
        "delivery_id",
        "fold_key",
        "fold_keys",
        "parse_body",
        "sign",
        "signing_key",
    ]
    for name in ghlsync.dripjobs.__all__:
        assert getattr(ghlsync.dripjobs, name) is not None


def test_server_exports() -> None:
    assert ghlsync.server.__all__ == [
        "WorkerState",
        "bind_loopback",
        "create_app",
        "serve_in_thread",
    ]
    for name in ghlsync.server.__all__:
        assert getattr(ghlsync.server, name) is not None
