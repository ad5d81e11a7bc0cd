"""Shell completion through click's scripts, driven by a real bash on the installed console script."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import clean_env, launcher, run

pytestmark = [pytest.mark.process, pytest.mark.once]
BASH = shutil.which("bash")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH of its own: otel-launch, a 'gunicorn' program and a non-executable 'gunicorn-notes'."""
    if len(launcher()) != 1:
        pytest.skip("no otel-launch console script installed")
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "otel-launch").symlink_to(launcher()[0])
    (folder / "gunicorn").write_text("#!/bin/sh\n")
    (folder / "gunicorn").chmod(0o755)
    (folder / "gunicorn-notes").write_text("")
    return folder


def complete(bin_dir: Path, workdir: Path, *words: str) -> list[str]:
    """COMPREPLY after bash's completion function for otel-launch ran on ``words`` (the last is typed)."""
    if BASH is None:
        pytest.skip("no bash here")
    quoted = " ".join(f"'{word}'" for word in words)
    script = (
        'eval "$(_OTEL_LAUNCH_COMPLETE=bash_source otel-launch)"\n'
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMPREPLY=()\n"
        "_otel_launch_completion otel-launch 2>/dev/null\n"  # compopt complains outside a real completion
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    result = run([BASH, "--norc", "-c", script], env, workdir, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_script_is_printed_and_registers_the_command(bin_dir: Path, workdir: Path):
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}/usr/bin", _OTEL_LAUNCH_COMPLETE="bash_source")
    result = run(["otel-launch"], env, workdir, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "complete -o nosort -F _otel_launch_completion otel-launch" in result.stdout


@pytest.mark.parametrize("shell", ["zsh_source", "fish_source"])
def test_zsh_and_fish_scripts_are_printed(bin_dir: Path, workdir: Path, shell: str):
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}/usr/bin", _OTEL_LAUNCH_COMPLETE=shell)
    result = run(["otel-launch"], env, workdir, timeout=30)
    assert result.returncode == 0 and "_OTEL_LAUNCH_COMPLETE" in result.stdout, result.stderr


def test_launcher_options(bin_dir: Path, workdir: Path):
    assert complete(bin_dir, workdir, "otel-launch", "--service-n") == ["--service-name"]


def test_first_word_is_a_subcommand_or_a_program_on_path(bin_dir: Path, workdir: Path):
    assert complete(bin_dir, workdir, "otel-launch", "gunic") == ["gunicorn"]  # not the non-executable file
    assert "tail" in complete(bin_dir, workdir, "otel-launch", "tai")
    assert complete(bin_dir, workdir, "otel-launch", "--service-name", "web", "--", "gunic") == ["gunicorn"]


def test_past_the_command_its_options_are_not_ours(bin_dir: Path, workdir: Path):
    """After COMMAND the words are the program's: no launcher option is offered (bash completes files)."""
    assert not any(word.startswith("--service") for word in complete(bin_dir, workdir, "otel-launch", "gunicorn", "--"))
    assert complete(bin_dir, workdir, "otel-launch", "gunicorn", "gunic") == []
