"""The JAX settings made on import: 64-bit mode and the persistent compilation cache.

Each case runs ``configure_jax`` in a fresh interpreter (JAX's settings are global), loading
its module alone so that the interpreter starts in about a second.
"""

import json
import os
import subprocess
import sys

import pytest

import surrogate_hmc._jax_setup

SHOW_SETTINGS = f"""
import importlib.util, json, jax
spec = importlib.util.spec_from_file_location("setup", {surrogate_hmc._jax_setup.__file__!r})
setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup)
setup.configure_jax()
print(json.dumps([
    jax.config.jax_enable_x64,
    jax.config.jax_compilation_cache_dir,
    jax.config.jax_persistent_cache_min_compile_time_secs,
    jax.config.jax_compilation_cache_max_size,
]))
"""


def settings_on_import(**env: str) -> list:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SURROGATE_HMC"))}
    result = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS],
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "expected_dir", "expected_min_seconds"),
    [
        ({"SURROGATE_HMC_CACHE_DIR": "{tmp}"}, "{tmp}", 0.1),
        ({"SURROGATE_HMC_CACHE_DIR": ""}, None, 1.0),
        ({"JAX_COMPILATION_CACHE_DIR": "{tmp}"}, "{tmp}", 1.0),
    ],
    ids=["our-variable", "disabled", "users-own-jax-cache"],
)
def test_import_configures_cache_unless_told_otherwise(
    tmp_path, env, expected_dir, expected_min_seconds
):
    env = {key: value.format(tmp=tmp_path) for key, value in env.items()}
    x64, directory, min_seconds, _ = settings_on_import(**env)
    assert x64 is True
    assert directory == (None if expected_dir is None else expected_dir.format(tmp=tmp_path))
    assert min_seconds == expected_min_seconds


def test_default_cache_is_in_the_user_cache_directory(tmp_path):
    _, directory, _, _ = settings_on_import(XDG_CACHE_HOME=str(tmp_path), HOME=str(tmp_path))
    assert directory == str(tmp_path / "surrogate-hmc" / "jax")


def test_our_cache_is_locked_and_the_users_own_is_left_as_it_is(tmp_path):
    *_, max_size = settings_on_import(SURROGATE_HMC_CACHE_DIR=str(tmp_path))
    assert max_size > 0  # a size limit is what turns on JAX's file lock
    *_, max_size = settings_on_import(JAX_COMPILATION_CACHE_DIR=str(tmp_path))
    assert max_size == -1


COMPILE_INTO_CACHE = f"""
import importlib.util, jax, jax.numpy as jnp
spec = importlib.util.spec_from_file_location("setup", {surrogate_hmc._jax_setup.__file__!r})
setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup)
setup.configure_jax()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
print(jax.jit(lambda x: jnp.sin(x) ** 2)(1.0))
"""


def compile_into_cache(directory) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SURROGATE_HMC"))}
    return subprocess.run(
        [sys.executable, "-c", COMPILE_INTO_CACHE],
        env=clean | {"SURROGATE_HMC_CACHE_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
    )


def test_an_entry_written_without_the_lock_is_dropped_and_the_cache_still_written_to(tmp_path):
    (tmp_path / "written-without-lock-cache").write_bytes(b"an entry without an access time")
    result = compile_into_cache(tmp_path)
    assert "Error" not in result.stderr, result.stderr
    entries = list(tmp_path.glob("*-cache"))
    assert len(entries) == 1
    assert entries[0].name != "written-without-lock-cache"
    assert entries[0].with_name(entries[0].name.replace("-cache", "-atime")).exists()


def test_a_cache_directory_that_cannot_be_written_is_not_used_and_says_so(tmp_path):
    blocked = tmp_path / "a-file-not-a-directory"
    blocked.write_text("")
    result = compile_into_cache(blocked / "jax")
    assert "cannot use the compilation cache" in result.stderr
    assert result.stdout.strip()  # and the program still ran
