"""env_switches.env_value answers as os.environ.get does, for names set, changed and removed at run time."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ome_arrow_core.env_switches as env_switches
from ome_arrow_core.checksums import verify_enabled
from ome_arrow_core.env_switches import env_value
from ome_arrow_core.typed_chunk.box_native import ENV as KERNELS_ENV
from ome_arrow_core.typed_chunk.box_native import installed, kernels

NAME = "OME_ARROW_TEST_SWITCH"
names = st.text(st.characters(blacklist_characters="=\0", blacklist_categories=("Cs",)), min_size=1, max_size=12)
values = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)


def test_set_changed_and_removed_are_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_value(NAME) is None
    monkeypatch.setenv(NAME, "0")
    assert env_value(NAME) == "0"
    os.environ[NAME] = "ünï"
    assert env_value(NAME) == "ünï"
    del os.environ[NAME]
    assert env_value(NAME) is None


@settings(max_examples=200, deadline=None)
@given(name=names, value=values)
def test_any_name_and_value_as_os_environ_says(name: str, value: str) -> None:
    name = "OME_ARROW_T_" + name
    try:
        os.environ[name] = value
    except (ValueError, OSError):
        return  # a name the OS refuses
    try:
        assert env_value(name) == os.environ.get(name) == value
    finally:
        del os.environ[name]
    assert env_value(name) is None


def test_without_the_posix_mapping_it_asks_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env_switches, "_FAST", False)
    monkeypatch.setenv(NAME, "x")
    assert env_value(NAME) == "x"
    monkeypatch.delenv(NAME)
    assert env_value(NAME) is None


def test_the_read_switches_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OME_ARROW_CORE_VERIFY", raising=False)
    assert verify_enabled() is True
    for off in ("0", "false", " NO ", "off"):
        monkeypatch.setenv("OME_ARROW_CORE_VERIFY", off)
        assert verify_enabled() is False
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "1")
    assert verify_enabled() is True
    monkeypatch.setenv(KERNELS_ENV, "0")
    assert kernels() is None
    monkeypatch.setenv(KERNELS_ENV, "1")
    assert kernels() is installed()
