"""The command's finish, through the real `coursecrafter` against a real server: usage errors,
help, shell completion, the next step after an upload, advice on a failure a retry cannot fix,
and an early Ctrl-C that keeps the parts that were on their way."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from livesupport import BIN, MIB, make_file, run_cli

PASSWORD = "lecture hall 42"


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """For what never reaches a server (usage errors, help, completion): no server to start."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
            "COURSECRAFTER_API_URL": "http://127.0.0.1:9", "NO_COLOR": "1",
            "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "cli-config")}


def account(env: dict[str, str], username: str = "ada") -> None:
    done = run_cli(env, "register", "--username", username, "--email", f"{username}@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    done = run_cli(env, "login", "--username", username, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_login_asks_before_replacing_another_account_on_a_terminal(cli_env, tmp_path):
    account(cli_env, "fay")
    run_cli(cli_env, "logout")
    account(cli_env, "erin")
    with Tmux(tmp_path, cli_env) as tmux:
        tmux.type("coursecrafter login -u fay; echo rc=$?", enter=True)
        tmux.wait_for("Log that out and log in as fay")
        assert "Profile 'default' is logged in as erin" in tmux.screen()
        tmux.type("n", enter=True)
        tmux.wait_for("rc=1")
        assert "aborted; nothing was changed" in tmux.screen()
    assert run_cli(cli_env, "whoami").stdout.startswith("erin ")


class Tmux:
    """A bash in a private tmux server (its own socket), for prompts and completion."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        self.env = {**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
                    "TERM": "xterm", "PS1": "$ "}

    def __enter__(self) -> Tmux:
        self._tmux("new-session", "-d", "-x", "200", "-y", "50", "bash --norc --noprofile")
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmux("kill-server", check=False)

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-S", self.socket, *args], env=self.env,
                              capture_output=True, text=True, timeout=30, check=check)
        return done.stdout

    def type(self, text: str, *, enter: bool = False) -> None:
        self._tmux("send-keys", "-l", "--", text)
        if enter:
            self._tmux("send-keys", "Enter")

    def tab(self) -> None:
        self._tmux("send-keys", "Tab")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.screen()}")


def test_usage_errors_are_one_error_line_with_exit_2(offline_env, tmp_path):
    cli_env = offline_env
    cases = {
        "missing": (["upload", str(tmp_path / "nope.mp4")],
                    f"error: {tmp_path / 'nope.mp4'}: no such file\n"),
        "directory": (["upload", str(tmp_path)],
                      f"error: {tmp_path} is a directory: upload takes one file"),
        "option": (["upload", "x.mp4", "--bogus"], "error: No such option: --bogus"),
        "argument": (["courses", "rename", "ID"], "error: Missing argument 'TITLE'."),
        "choice": (["wait", "ID", "--until", "soon"], "error: Invalid value for '--until'"),
    }
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.mp4"
        locked.write_bytes(b"x")
        locked.chmod(0)
        cases["unreadable"] = (["upload", str(locked)],
                               f"error: cannot read {locked}: permission denied\n")
    for name, (args, expected) in cases.items():
        done = run_cli(cli_env, *args)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stdout == "", name
        assert done.stderr.startswith(expected), (name, done.stderr)
        assert done.stderr.count("\n") == 1, (name, done.stderr)
        assert "Usage:" not in done.stderr and "╭" not in done.stderr


def test_help_has_examples_exit_codes_and_no_raw_placeholders(offline_env):
    cli_env = offline_env
    root = run_cli(cli_env, "--help")
    assert root.returncode == 0
    assert "Exit codes:" in root.stdout and "  4    not logged in" in root.stdout
    assert "Examples:" in root.stdout and "--install-completion" in root.stdout
    for args in (["upload"], ["courses", "publish"], ["token", "create"], ["login"]):
        shown = run_cli(cli_env, *args, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "  Examples:\n    $ coursecrafter " + " ".join(args) in shown.stdout
        assert not re.search(r"<bool>|<int|<text>|<file>|<str>|\{[A-Z_]+\}", shown.stdout), \
            shown.stdout
    assert "Usage: coursecrafter upload [OPTIONS] FILE\n" in run_cli(cli_env, "upload",
                                                                    "-h").stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_shell_completion_in_bash(offline_env, tmp_path):
    school = Path(offline_env["COURSECRAFTER_CONFIG_DIR"]) / "profiles" / "school"
    school.mkdir(parents=True)
    (school / "credentials.json").write_text('{"api_url": "http://cc.school.edu", '
                                             '"username": "bob"}')
    with Tmux(tmp_path, offline_env) as tmux:
        tmux.type('eval "$(coursecrafter --show-completion bash)"', enter=True)
        tmux.type("coursecrafter cour")
        tmux.tab()
        tmux.wait_for("coursecrafter courses ")
        tmux.type("pub")
        tmux.tab()
        tmux.wait_for("coursecrafter courses publish ")
        tmux.type("--pro")
        tmux.tab()
        tmux.wait_for("coursecrafter courses publish --profile ")
        tmux.type("sch")
        tmux.tab()
        tmux.wait_for("coursecrafter courses publish --profile school ")


def test_upload_prints_the_next_step_and_a_bad_file_is_not_sent_to_retry(cli_env, tmp_path):
    # A validation message in words, not the server's regex.
    bad = run_cli(cli_env, "register", "-u", "a b", "--email", "ab@example.edu",
                  "--password-stdin", stdin=PASSWORD + "\n")
    assert bad.returncode == 1
    assert bad.stderr == "error: username: use 2 to 64 letters, digits, dots, underscores or " \
                         "hyphens, starting with a letter or digit\n"
    account(cli_env)
    junk = tmp_path / "lecture.mp4"
    junk.write_bytes(os.urandom(64 * 1024))  # not media, whatever the name says
    up = run_cli(cli_env, "upload", str(junk))
    assert up.returncode == 0, up.stderr
    video_id = re.search(r"as video (\S+) ", up.stdout).group(1)
    assert f"next: `coursecrafter wait {video_id}`" in up.stderr

    waited = run_cli(cli_env, "wait", video_id, "--interval", "0.2", "--timeout", "120")
    assert waited.returncode == 5, waited.stderr
    assert f"error: video {video_id} failed:" in waited.stderr
    assert "a retry would fail the same way" in waited.stderr
    assert "coursecrafter retry" not in waited.stderr
    assert json.loads(run_cli(cli_env, "status", video_id, "--json").stdout)["error"]["code"] \
        == "not_media"


def _read_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads /proc/<pid>/io")
def test_early_ctrl_c_keeps_the_parts_in_flight(cli_env, tmp_path):
    account(cli_env)
    notes = make_file(tmp_path / "notes.pdf", 40 * MIB)  # 5 parts of 8 MiB
    config = Path(cli_env["COURSECRAFTER_CONFIG_DIR"])
    args = [str(BIN / "coursecrafter"), "upload", str(notes), "--attachment", "--no-checksum",
            "-c", "2"]
    # SIGINT as a terminal delivers it, even when this suite runs as a background job (which
    # starts with SIGINT ignored, inherited by the CLI: its Python would never see the Ctrl-C).
    proc = subprocess.Popen([*args, "--limit-rate", "4M"], env=cli_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Once the upload exists and 3 MiB of the file were read, two parts are on their way
        # and neither is finished (8 MiB each at 2 MiB/s): Ctrl-C now.
        deadline = time.monotonic() + 60
        while not list((config / "uploads").glob("*.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        start = _read_bytes(proc.pid)
        while _read_bytes(proc.pid) - start < 3 * MIB:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    # Normally both parts are in flight; on a busy machine the signal may land after one of
    # them finished, so the rule checked is: every part in flight at Ctrl-C is kept.
    stopping = re.search(r"stopping: finishing (\d) part\(s\) in flight", err)
    assert stopping, err
    in_flight = int(stopping.group(1))
    assert in_flight >= 1
    assert "run the same command again to resume" in err

    again = subprocess.run(args, env=cli_env, text=True, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr
    resumed = re.search(r"resuming upload \S+: (\d) of 5 part\(s\) already in storage",
                        again.stderr)
    assert resumed, again.stderr
    assert in_flight <= int(resumed.group(1)) < 5, (err, again.stderr)
