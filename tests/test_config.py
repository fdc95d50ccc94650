"""Settings (precedence, TOML, per-bucket overrides, coercion, immutability) and the error hierarchy."""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import config
from xtremehub.config import ExecutorSettings, S3Settings, Settings, default_config_path, default_settings
from xtremehub.errors import (
    AccessDenied,
    BucketNotFound,
    ComputeError,
    ConfigError,
    ExecutorClosed,
    InvalidRange,
    MissingDependency,
    ObjectNotFound,
    PluginNotFound,
    StorageError,
    StorageUnavailable,
    TaskError,
    TaskTimeout,
    UnsupportedURL,
    WorkerDied,
    XHubError,
)
from xtremehub.storage import open_store


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def toml_file(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


# --------------------------------------------------------------------------- precedence


# One field (s3.region), five layers added one at a time, highest last.
_LAYERS: list[tuple[str, str | None]] = [
    ("defaults", None),
    ("aws_env", "from-aws"),
    ("toml", "from-toml"),
    ("xhub_env", "from-xhub"),
    ("override", "from-override"),
]


@pytest.mark.parametrize("depth", range(len(_LAYERS)), ids=[name for name, _ in _LAYERS])
def test_each_layer_beats_the_ones_below(toml_file: Path, depth: int) -> None:
    layers = {name for name, _ in _LAYERS[: depth + 1]}
    env: dict[str, str] = {}
    overrides: dict[str, object] = {}
    if "aws_env" in layers:
        env["AWS_REGION"] = "from-aws"
    if "toml" in layers:
        write_toml(toml_file, '[s3]\nregion = "from-toml"\n')
    if "xhub_env" in layers:
        env["XHUB_S3_REGION"] = "from-xhub"
    if "override" in layers:
        overrides["s3"] = {"region": "from-override"}

    settings = Settings.load(config_file=toml_file if "toml" in layers else None, env=env, **overrides)

    assert settings.s3.region == _LAYERS[depth][1]


def test_precedence_field_by_field_all_layers_at_once(toml_file: Path) -> None:
    write_toml(
        toml_file,
        """
log_level = "info"
home = "/from/toml"

[s3]
region = "toml-region"
endpoint_url = "http://toml:8333"
read_timeout = 11.0

[executor]
workers = 3
retries = 2
""",
    )
    env = {
        "AWS_REGION": "aws-region",  # loses to the file
        "AWS_ENDPOINT_URL": "http://aws:9000",  # loses to the file
        "AWS_ACCESS_KEY_ID": "aws-key",  # nothing else sets it: wins over the default
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "XHUB_S3_ENDPOINT_URL": "http://xhub:8333",  # beats file and AWS
        "XHUB_EXECUTOR_WORKERS": "5",  # beats file
        "XHUB_LOG_LEVEL": "error",  # beats file, loses to the override
    }
    s = Settings.load(config_file=toml_file, env=env, log_level="debug", executor={"retries": 7})

    assert s.log_level == "DEBUG"  # override > XHUB env > file
    assert s.home == Path("/from/toml")  # file > default
    assert s.s3.region == "toml-region"  # file > AWS env
    assert s.s3.endpoint_url == "http://xhub:8333"  # XHUB env > file > AWS env
    assert s.s3.access_key_id == "aws-key"  # AWS env > default
    assert s.s3.secret_access_key == "aws-secret"
    assert s.s3.read_timeout == 11.0  # file > default
    assert s.s3.max_retries == S3Settings().max_retries  # untouched default
    assert s.executor.workers == 5  # XHUB env > file
    assert s.executor.retries == 7  # a dict override merges field by field
    assert s.executor.backend == "local"


def test_defaults_when_nothing_is_configured() -> None:
    s = Settings.load(config_file=None, env={})
    assert s == Settings()
    assert s.s3 == S3Settings()
    assert s.executor == ExecutorSettings()
    assert dict(s.buckets) == {}
    assert s.log_level == "WARNING"


def test_an_override_object_replaces_the_whole_section(toml_file: Path) -> None:
    write_toml(toml_file, '[s3]\nregion = "toml-region"\nendpoint_url = "http://toml"\n')
    explicit = S3Settings(region="explicit")
    s = Settings.load(config_file=toml_file, env={"XHUB_S3_MAX_RETRIES": "9"}, s3=explicit)
    assert s.s3 == explicit
    assert s.s3.endpoint_url is None  # nothing from the file or env leaks into an explicit object


def test_home_override_is_a_path_with_user_expanded() -> None:
    s = Settings.load(config_file=None, env={}, home="~/xhub-data")
    assert isinstance(s.home, Path)
    assert s.home == Path("~/xhub-data").expanduser()
    assert "~" not in str(s.home)


def test_xhub_home_env_becomes_a_path() -> None:
    s = Settings.load(config_file=None, env={"XHUB_HOME": "/srv/xhub"})
    assert s.home == Path("/srv/xhub")


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        (
            {"AWS_ENDPOINT_URL_S3": "http://s3-only", "AWS_ENDPOINT_URL": "http://generic"},
            "endpoint_url",
            "http://s3-only",
        ),
        ({"AWS_ENDPOINT_URL": "http://generic"}, "endpoint_url", "http://generic"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "region", "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, "region", "us-west-2"),
        ({"AWS_SESSION_TOKEN": "tok"}, "session_token", "tok"),
        ({"AWS_REGION": ""}, "region", None),  # empty AWS variables are ignored
    ],
)
def test_standard_aws_variables(env: dict[str, str], field: str, expected: str | None) -> None:
    assert getattr(Settings.load(config_file=None, env=env).s3, field) == expected


# --------------------------------------------------------------------------- config file location


def test_xhub_config_env_points_at_the_file(toml_file: Path) -> None:
    write_toml(toml_file, 'log_level = "info"\n[s3]\nregion = "from-xhub-config"\n')
    s = Settings.load(env={"XHUB_CONFIG": str(toml_file)})  # config_file="default"
    assert s.s3.region == "from-xhub-config"
    assert s.log_level == "INFO"
    assert default_config_path({"XHUB_CONFIG": str(toml_file)}) == toml_file


def test_xdg_config_home_is_the_fallback_location(tmp_path: Path) -> None:
    path = tmp_path / "xtremehub" / "config.toml"
    path.parent.mkdir()
    write_toml(path, '[s3]\nregion = "from-xdg"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert default_config_path(env) == path
    assert Settings.load(env=env).s3.region == "from-xdg"
    # XHUB_CONFIG wins over the XDG location
    other = write_toml(tmp_path / "other.toml", '[s3]\nregion = "from-other"\n')
    assert Settings.load(env={**env, "XHUB_CONFIG": str(other)}).s3.region == "from-other"


def test_missing_default_location_is_fine_but_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    assert Settings.load(env={"XDG_CONFIG_HOME": str(tmp_path / "empty")}) == Settings()
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as excinfo:
        Settings.load(config_file=missing, env={})
    assert str(missing) in str(excinfo.value)


# --------------------------------------------------------------------------- per-bucket overrides


def test_bucket_tables_inherit_unset_fields_from_s3(toml_file: Path) -> None:
    write_toml(
        toml_file,
        """
[s3]
endpoint_url = "https://s3.eu-west-1.amazonaws.com"
region = "eu-west-1"
access_key_id = "global-key"
secret_access_key = "global-secret"
read_timeout = 30.0

[s3.buckets.scratch]
endpoint_url = "http://127.0.0.1:8333"
addressing_style = "path"
max_retries = 0

[s3.buckets.archive]
access_key_id = "archive-key"
secret_access_key = "archive-secret"
""",
    )
    s = Settings.load(config_file=toml_file, env={"XHUB_S3_CONNECT_TIMEOUT": "1.5"})

    scratch = s.s3_for("scratch")
    assert scratch.endpoint_url == "http://127.0.0.1:8333"
    assert scratch.addressing_style == "path"
    assert scratch.max_retries == 0
    # inherited from [s3], including values that came from the environment
    assert scratch.region == "eu-west-1"
    assert scratch.access_key_id == "global-key"
    assert scratch.read_timeout == 30.0
    assert scratch.connect_timeout == 1.5

    archive = s.s3_for("archive")
    assert archive.access_key_id == "archive-key"
    assert archive.secret_access_key == "archive-secret"
    assert archive.endpoint_url == "https://s3.eu-west-1.amazonaws.com"

    assert s.s3_for("anything-else") == s.s3
    assert s.s3_for("anything-else").addressing_style == "auto"
    assert sorted(s.buckets) == ["archive", "scratch"]


def test_bucket_overrides_also_come_from_arguments() -> None:
    s = Settings.load(config_file=None, env={"XHUB_S3_REGION": "r1"}, buckets={"b": {"endpoint_url": "http://b"}})
    assert s.s3_for("b").endpoint_url == "http://b"
    assert s.s3_for("b").region == "r1"
    assert s.s3_for("other").endpoint_url is None


def test_s3_store_resolution_uses_the_bucket_override(toml_file: Path) -> None:
    write_toml(toml_file, '[s3]\nregion = "g"\n[s3.buckets.special]\nendpoint_url = "http://special"\n')
    s = Settings.load(config_file=toml_file, env={})
    special, key = open_store("s3://special/a/b.bin", s)
    plain, _ = open_store("s3://plain/x", s)
    assert key == "a/b.bin"
    assert special.settings.endpoint_url == "http://special"  # type: ignore[attr-defined]
    assert plain.settings.endpoint_url is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[s3.buckets.scratch]\nendpoint = "x"\n', "s3.buckets.scratch"),  # unknown key
        ('[s3.buckets.scratch]\nmax_retries = "lots"\n', "s3.buckets.scratch.max_retries"),
        ('[s3.buckets.scratch]\naddressing_style = "sideways"\n', "s3.buckets.scratch.addressing_style"),
        ("[s3.buckets.scratch]\nconnect_timeout = -1\n", "s3.buckets.scratch"),
        ("[s3.buckets]\nscratch = 5\n", "s3.buckets.scratch"),
        ("[s3]\nbuckets = 5\n", "s3.buckets"),
    ],
)
def test_bad_bucket_tables_name_the_bucket(toml_file: Path, text: str, needle: str) -> None:
    write_toml(toml_file, text)
    with pytest.raises(ConfigError) as excinfo:
        Settings.load(config_file=toml_file, env={})
    assert needle in str(excinfo.value)


# --------------------------------------------------------------------------- typed coercion


def test_env_strings_are_coerced_to_the_declared_types() -> None:
    env = {
        "XHUB_S3_MAX_RETRIES": "7",
        "XHUB_S3_CONNECT_TIMEOUT": "1.5",
        "XHUB_S3_READ_TIMEOUT": "20",
        "XHUB_S3_MULTIPART_THRESHOLD": "5242880",
        "XHUB_S3_ADDRESSING_STYLE": "virtual",
        "XHUB_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "XHUB_EXECUTOR_WORKERS": "4",
        "XHUB_EXECUTOR_START_METHOD": "spawn",
        "XHUB_EXECUTOR_PROGRESS": "false",
        "XHUB_LOG_LEVEL": "debug",
    }
    s = Settings.load(config_file=None, env=env)
    assert s.s3.max_retries == 7
    assert type(s.s3.max_retries) is int
    assert s.s3.connect_timeout == 1.5
    assert type(s.s3.read_timeout) is float
    assert s.s3.read_timeout == 20.0
    assert s.s3.multipart_threshold == 5 * 1024 * 1024
    assert s.s3.addressing_style == "virtual"
    assert s.s3.endpoint_url == "http://127.0.0.1:1"
    assert s.executor.workers == 4
    assert s.executor.start_method == "spawn"
    assert s.executor.progress is False
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("none", None),
        ("", None),
    ],
)
def test_bool_or_none_from_env(raw: str, expected: bool | None) -> None:
    assert Settings.load(config_file=None, env={"XHUB_EXECUTOR_PROGRESS": raw}).executor.progress is expected


@pytest.mark.parametrize(("raw", "expected"), [("none", None), ("null", None), ("", None), ("12", 12)])
def test_optional_int_from_env(raw: str, expected: int | None) -> None:
    assert Settings.load(config_file=None, env={"XHUB_EXECUTOR_WORKERS": raw}).executor.workers == expected


def test_toml_values_are_coerced_too(toml_file: Path) -> None:
    write_toml(toml_file, "[s3]\nconnect_timeout = 2\nmax_retries = 4.0\n[executor]\nprogress = true\n")
    s = Settings.load(config_file=toml_file, env={})
    assert type(s.s3.connect_timeout) is float
    assert s.s3.connect_timeout == 2.0
    assert type(s.s3.max_retries) is int
    assert s.s3.max_retries == 4
    assert s.executor.progress is True


@pytest.mark.parametrize(
    ("var", "value", "field"),
    [
        ("XHUB_S3_MAX_RETRIES", "many", "s3.max_retries"),
        ("XHUB_S3_MAX_RETRIES", "2.5", "s3.max_retries"),
        ("XHUB_S3_MAX_RETRIES", "-1", "s3.max_retries"),
        ("XHUB_S3_CONNECT_TIMEOUT", "fast", "s3.connect_timeout"),
        ("XHUB_S3_CONNECT_TIMEOUT", "0", "s3.connect_timeout"),
        ("XHUB_S3_READ_TIMEOUT", "-3", "s3.read_timeout"),
        ("XHUB_S3_MAX_CONCURRENCY", "0", "s3.max_concurrency"),
        ("XHUB_S3_ADDRESSING_STYLE", "sideways", "s3.addressing_style"),
        ("XHUB_S3_ADDRESSING_STYLE", "PATH", "s3.addressing_style"),
        ("XHUB_EXECUTOR_PROGRESS", "maybe", "executor.progress"),
        ("XHUB_EXECUTOR_WORKERS", "0", "executor.workers"),
        ("XHUB_EXECUTOR_WORKERS", "four", "executor.workers"),
        ("XHUB_EXECUTOR_RETRIES", "-1", "executor.retries"),
        ("XHUB_EXECUTOR_START_METHOD", "teleport", "executor.start_method"),
    ],
)
def test_bad_env_values_raise_config_error_naming_the_field(var: str, value: str, field: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.load(config_file=None, env={var: value})
    message = str(excinfo.value)
    assert field in message
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("[s3]\nmax_retries = true\n", "s3.max_retries", "True"),  # bool is not an int
        ("[s3]\nmax_retries = 2.5\n", "s3.max_retries", "2.5"),  # would silently truncate
        ("[s3]\nconnect_timeout = false\n", "s3.connect_timeout", "False"),
        ('[s3]\nread_timeout = "soon"\n', "s3.read_timeout", "soon"),
        ('[executor]\nstart_method = "clone"\n', "executor.start_method", "clone"),
    ],
)
def test_bad_toml_values_raise_config_error_naming_field_and_value(
    toml_file: Path, text: str, field: str, value: str
) -> None:
    write_toml(toml_file, text)
    with pytest.raises(ConfigError) as excinfo:
        Settings.load(config_file=toml_file, env={})
    assert field in str(excinfo.value)
    assert value in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('colour = "blue"\n', ["colour"]),
        ('[s3]\nendpoint = "http://x"\n', ["s3", "endpoint", "endpoint_url"]),  # also lists the known names
        ("[executor]\nthreads = 4\n", ["executor", "threads"]),
        ("[executor]\nbuckets = 4\n", ["executor", "buckets"]),  # only [s3] has bucket tables
    ],
)
def test_unknown_keys_are_rejected(toml_file: Path, text: str, needles: list[str]) -> None:
    write_toml(toml_file, text)
    with pytest.raises(ConfigError) as excinfo:
        Settings.load(config_file=toml_file, env={})
    for needle in needles:
        assert needle in str(excinfo.value)


def test_unknown_top_level_key_names_the_file(toml_file: Path) -> None:
    write_toml(toml_file, 'colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting") as excinfo:
        Settings.load(config_file=toml_file, env={})
    assert str(toml_file) in str(excinfo.value)


def test_unknown_override_keys_are_rejected() -> None:
    with pytest.raises(ConfigError, match="colour"):
        Settings.load(config_file=None, env={}, colour="blue")
    with pytest.raises(ConfigError, match="bogus"):
        Settings.load(config_file=None, env={}, s3={"bogus": 1})


@pytest.mark.parametrize(
    "env",
    [{}, {"AWS_REGION": "eu-west-1"}, {"XHUB_S3_REGION": "eu-west-1"}],
    ids=["no-env", "aws-env", "xhub-env"],
)
def test_a_section_that_is_not_a_table_is_a_config_error(toml_file: Path, env: dict[str, str]) -> None:
    write_toml(toml_file, 's3 = "oops"\n')
    with pytest.raises(ConfigError, match="s3 must be a table"):
        Settings.load(config_file=toml_file, env=env)


@pytest.mark.parametrize("text", ["[s3\nregion = 1\n", 'log_level = "unterminated\n', "a = = 1\n"])
def test_invalid_toml_is_a_config_error_naming_the_file(toml_file: Path, text: str) -> None:
    write_toml(toml_file, text)
    with pytest.raises(ConfigError, match="not valid TOML") as excinfo:
        Settings.load(config_file=toml_file, env={})
    assert str(toml_file) in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, Exception)  # the parser's error is chained


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match=r"s3\.addressing_style"):
        S3Settings(addressing_style="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"executor\.workers"):
        ExecutorSettings(workers=0)
    with pytest.raises(ConfigError, match=r"s3\.read_timeout"):
        S3Settings(read_timeout=0)


# --------------------------------------------------------------------------- immutability and pickling


def _sample_settings(toml_file: Path) -> Settings:
    write_toml(
        toml_file,
        """
home = "/data/xhub"
log_level = "info"
[s3]
region = "eu-west-1"
access_key_id = "k"
secret_access_key = "s"
[s3.buckets.scratch]
endpoint_url = "http://127.0.0.1:8333"
addressing_style = "path"
[executor]
workers = 2
""",
    )
    return Settings.load(config_file=toml_file, env={})


def test_settings_are_frozen(toml_file: Path) -> None:
    s = _sample_settings(toml_file)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.log_level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.s3.region = "us-east-1"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.executor.workers = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.s3_for("scratch").endpoint_url = "http://elsewhere"  # type: ignore[misc]
    assert s.log_level == "INFO"
    assert s.s3.region == "eu-west-1"


def test_buckets_are_read_only(toml_file: Path) -> None:
    s = _sample_settings(toml_file)
    with pytest.raises(TypeError):
        s.buckets["other"] = S3Settings()  # type: ignore[index]
    with pytest.raises(TypeError):
        del s.buckets["scratch"]  # type: ignore[attr-defined]
    assert list(s.buckets) == ["scratch"]


def test_buckets_are_copied_from_the_callers_dict() -> None:
    mine = {"a": S3Settings(region="r")}
    s = Settings(buckets=mine)
    mine["b"] = S3Settings()
    mine.pop("a")
    assert list(s.buckets) == ["a"]
    assert s.s3_for("a").region == "r"


def test_replace_returns_a_new_frozen_copy(toml_file: Path) -> None:
    s = _sample_settings(toml_file)
    t = s.replace(executor=ExecutorSettings(workers=8), buckets={"z": S3Settings()})
    assert t.executor.workers == 8
    assert s.executor.workers == 2  # the original is unchanged
    assert list(t.buckets) == ["z"]
    with pytest.raises(TypeError):
        t.buckets["y"] = S3Settings()  # type: ignore[index]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_settings_pickle_round_trip(toml_file: Path, protocol: int) -> None:
    s = _sample_settings(toml_file)
    back = pickle.loads(pickle.dumps(s, protocol=protocol))
    assert back == s
    assert back is not s
    assert back.s3_for("scratch") == s.s3_for("scratch")
    assert back.s3_for("scratch").addressing_style == "path"
    assert back.home == Path("/data/xhub")
    with pytest.raises(TypeError):
        back.buckets["x"] = S3Settings()  # still read-only after the trip


# --------------------------------------------------------------------------- process default settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No XHUB_*/AWS_* variables, a private config file, and no process settings left behind."""
    for name in list(os.environ):
        if name.startswith(("XHUB_", "AWS_")):
            monkeypatch.delenv(name)
    path = write_toml(tmp_path / "process.toml", '[s3]\nregion = "from-file"\n')
    monkeypatch.setenv("XHUB_CONFIG", str(path))
    config.use_process_settings(None)
    try:
        yield path
    finally:
        config.use_process_settings(None)


def test_default_settings_follow_xhub_env_changes(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = default_settings()
    assert first.s3.region == "from-file"
    assert default_settings() is first  # cached while the environment is unchanged

    monkeypatch.setenv("XHUB_S3_REGION", "from-env")
    monkeypatch.setenv("XHUB_EXECUTOR_WORKERS", "3")
    second = default_settings()
    assert second.s3.region == "from-env"
    assert second.executor.workers == 3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-key")
    assert default_settings().s3.access_key_id == "aws-key"

    monkeypatch.delenv("XHUB_S3_REGION")
    assert default_settings().s3.region == "from-file"


def test_default_settings_follow_a_new_config_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_settings().s3.region == "from-file"
    other = write_toml(clean_env.with_name("other.toml"), '[s3]\nregion = "other-file"\n')
    monkeypatch.setenv("XHUB_CONFIG", str(other))
    assert default_settings().s3.region == "other-file"


def test_use_process_settings_overrides_the_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = Settings(s3=S3Settings(region="process", endpoint_url="http://process"))
    config.use_process_settings(mine)
    try:
        assert default_settings() is mine
        monkeypatch.setenv("XHUB_S3_REGION", "from-env")
        assert default_settings() is mine  # env changes do not win over process settings
        store, _ = open_store("s3://some-bucket/key")
        assert store.settings == mine.s3  # type: ignore[attr-defined]
    finally:
        config.use_process_settings(None)
    assert default_settings().s3.region == "from-env"


# --------------------------------------------------------------------------- error hierarchy


@pytest.mark.parametrize(
    ("cls", "builtins"),
    [
        (ObjectNotFound, (FileNotFoundError, OSError)),
        (BucketNotFound, (ObjectNotFound, FileNotFoundError)),
        (AccessDenied, (PermissionError, OSError)),
        (InvalidRange, (ValueError, OSError)),
        (UnsupportedURL, (ValueError,)),
        (StorageUnavailable, (ConnectionError, OSError)),
    ],
)
def test_storage_errors_are_also_builtin_errors(cls: type[StorageError], builtins: tuple[type, ...]) -> None:
    err = cls("s3://bucket/key.bin", "detail text")
    assert isinstance(err, XHubError)
    assert isinstance(err, StorageError)
    for builtin in builtins:
        assert isinstance(err, builtin)
    assert err.url == "s3://bucket/key.bin"
    assert str(err) == "s3://bucket/key.bin: detail text"


def test_builtin_except_clauses_catch_our_errors() -> None:
    with pytest.raises(FileNotFoundError):
        raise ObjectNotFound("mem://b/k")
    with pytest.raises(PermissionError):
        raise AccessDenied("mem://b/k")
    with pytest.raises(ValueError, match="bad range"):
        raise InvalidRange("mem://b/k", "bad range")
    with pytest.raises(ConnectionError):
        raise StorageUnavailable("mem://b/k")
    with pytest.raises(XHubError):
        raise StorageUnavailable("mem://b/k")


def test_other_errors_derive_from_the_expected_builtins() -> None:
    assert issubclass(ConfigError, XHubError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(PluginNotFound, ValueError)
    assert issubclass(MissingDependency, ImportError)
    assert issubclass(TaskTimeout, TimeoutError)
    assert issubclass(TaskTimeout, ComputeError)
    assert issubclass(ExecutorClosed, RuntimeError)
    assert issubclass(WorkerDied, ComputeError)
    assert issubclass(ComputeError, XHubError)
    assert not issubclass(ComputeError, OSError)


@pytest.mark.parametrize(
    ("cls", "default"),
    [
        (StorageError, "storage operation failed"),
        (ObjectNotFound, "object not found"),
        (BucketNotFound, "bucket not found"),
        (AccessDenied, "access denied"),
        (InvalidRange, "invalid byte range"),
        (StorageUnavailable, "storage unavailable"),
    ],
)
def test_default_detail(cls: type[StorageError], default: str) -> None:
    err = cls("s3://b/k")
    assert err.detail == default
    assert str(err) == f"s3://b/k: {default}"


@pytest.mark.parametrize(
    "cls",
    [StorageError, ObjectNotFound, BucketNotFound, AccessDenied, InvalidRange, UnsupportedURL, StorageUnavailable],
)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_storage_errors_pickle_round_trip(cls: type[StorageError], protocol: int) -> None:
    err = cls("s3://bucket/dir/key.bin", "bytes [5, 9) start past the end (size 3)")
    back = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(back) is cls
    assert back.url == err.url
    assert back.detail == err.detail
    assert str(back) == str(err)
    assert back.args == err.args


def test_other_errors_pickle_round_trip() -> None:
    task = TaskError("boom", type_name="mylib.Custom", remote_traceback="Traceback...\nmylib.Custom: boom")
    back = pickle.loads(pickle.dumps(task))
    assert type(back) is TaskError
    assert str(back) == "boom"
    assert back.type_name == "mylib.Custom"
    assert back.remote_traceback.endswith("mylib.Custom: boom")

    for err in (ConfigError("s3.max_retries: bad"), TaskTimeout("ran 3s"), WorkerDied("killed"), ExecutorClosed("x")):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err)
        assert str(again) == str(err)
