"""The public names of `ghlsync.mapping`, pinned: other areas code against them."""

import ghlsync.mapping


def test_public_api_is_pinned() -> None:
    assert ghlsync.mapping.__all__ == [
        "ENV_OVERRIDES",
        "Action",
        "AppConfig",
        "ConfigError",
        "Defaults",
        "DripJobsSettings",
        "EntityKey",
        "EntityType",
        "EventRule",
        "FieldRule",
        "GHLSettings",
        "MappedEntity",
        "MappedEvent",
        "Mapper",
        "MappingError",
        "TagDelta",
        "TagRule",
        "UnknownEventError",
        "WorkerSettings",
        "config_source",
        "content_hash",
        "load_config",
        "preset_text",
        "render_preset",
        "selected_environment",
    ]
    for name in ghlsync.mapping.__all__:
        assert getattr(ghlsync.mapping, name) is not None
