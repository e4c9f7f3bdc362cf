import ghlsync


def test_version_is_exported() -> None:
    assert ghlsync.__all__ == ["__version__"]
    assert ghlsync.__version__
