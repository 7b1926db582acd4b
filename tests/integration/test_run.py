"""One-off dynos (runtime/manager/api-run.c, the attach protocol of
common/attach.h spoken by the dyno's init, cli/cmd-run.c): `dyno run`
against a real dynod (test_supervise's Dynod: its own network namespace)
passes stdin, gives the command's exit status (128+N for a signal, 127 for
a missing command), a pty when the client has a terminal (Ctrl-C reaches
the app), --detach shows run.N in ps and its output in the log, and the
API's refusals exit 125."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from test_supervise import Dynod, make_app  # noqa: F401
from test_router_keeper import kept  # noqa: F401 (the fixture)
from test_supervise import dynod  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")


def deployed(d, tmp_path):
    slug = make_app(d, tmp_path, "worker: sleep 1000\n")
    assert d.cli("apps:create", "app").returncode == 0
    r = d.cli("deploy", slug)
    assert r.returncode == 0, r.stderr
    return d


def run(d, *args, input=None, timeout=30):
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    return subprocess.run([str(d.dyno_bin), "run", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, input=input)


def test_status_stdin_signal_missing(dynod, tmp_path):
    d = deployed(dynod, tmp_path)
    r = run(d, "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, (r.stdout, r.stderr, d.log.read_text()[-2000:])
    r = run(d, "cat", input="hi\n")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = run(d, "--", "sh", "-c", "echo out; echo err >&2; kill -TERM $$")
    assert r.returncode == 128 + 15, r.stderr
    assert r.stdout == "out\n" and "err\n" in r.stderr
    r = run(d, "no-such-command-here")
    assert r.returncode == 127, r.stderr
    assert "not found" in r.stderr
    r = run(d, "/app/Procfile")  # there, not executable
    assert r.returncode == 126, r.stderr
    assert "Permission denied" in r.stderr
    # the words are quoted for sh: one argument with a space and a quote
    r = run(d, "printf", "%s|", "a b", "it's")
    assert (r.returncode, r.stdout) == (0, "a b|it's|"), r.stderr


def test_refusals_exit_125(dynod, tmp_path):
    d = deployed(dynod, tmp_path)
    r = run(d, "--size", "huge", "true")
    assert r.returncode == 125 and 'unknown size "huge"' in r.stderr, r.stderr
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="nope")
    r = subprocess.run([str(d.dyno_bin), "run", "true"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 125 and 'app "nope" not found' in r.stderr, r.stderr
    r = run(d, "--detach", "--size", "huge", "true")
    assert r.returncode == 125 and "unknown size" in r.stderr, r.stderr


def pty_run(d, cmd, send=None, after=None, timeout=20):
    """Runs `dyno run CMD` on a pty of ours; returns (output, status)."""
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(d.dyno_bin), [str(d.dyno_bin), "run", "--", *cmd], env)
    out = b""
    sent = False
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if send and not sent and after.encode() in out:
                os.write(fd, send)
                sent = True
            r, _, _ = select.select([fd], [], [], 0.2)
            chunk = b""
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the client is gone, its pty closed
                    pass
                out += chunk
            if r and not chunk:
                _, st = os.waitpid(pid, 0)
                return out.decode(errors="replace"), os.waitstatus_to_exitcode(st)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"dyno run {cmd} did not end: {out!r}\n" + d.log.read_text()[-2000:])
    finally:
        os.close(fd)


def test_pty_tty_and_ctrl_c(dynod, tmp_path):
    d = deployed(dynod, tmp_path)
    out, code = pty_run(d, ["tty"])
    assert code == 0 and "/dev/pts/" in out, out
    out, code = pty_run(d, ["sh", "-c", "echo ready; exec sleep 100"], send=b"\x03",
                        after="ready")
    assert code == 130, out


def test_pty_size_and_sigwinch(dynod, tmp_path):
    """The client's terminal size reaches the dyno's pty, at the start and
    when it changes (SIGWINCH to the client, its new size to the dyno)."""
    d = deployed(dynod, tmp_path)
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execve(str(d.dyno_bin), [str(d.dyno_bin), "run", "--", "sh", "-c",
                                    "stty size; trap 'stty size; exit 0' WINCH; echo ready; "
                                    "while :; do sleep 0.1; done"], env)
    out, resized = b"", False
    end = time.monotonic() + 20
    try:
        while time.monotonic() < end:
            if not resized and b"ready" in out:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 120, 0, 0))
                resized = True
            r, _, _ = select.select([fd], [], [], 0.2)
            chunk = b""
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    pass
                out += chunk
            if r and not chunk:
                break
        _, st = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(st) == 0, text
    assert "33 101" in text and "44 120" in text, text
    assert text.index("33 101") < text.index("44 120")


def test_detach_ps_and_logs(dynod, tmp_path):
    d = deployed(dynod, tmp_path)
    r = run(d, "--detach", "--", "sh", "-c", "echo detached-hello; sleep 30")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Running sh -c 'echo detached-hello; sleep 30' on app... up, run.1\n"
    d.wait(lambda ds: any(x["name"] == "run.1" for x in ds), what="run.1 in ps")
    r = d.cli("ps")
    assert "run.1" in r.stdout, r.stdout
    end = time.monotonic() + 15
    while time.monotonic() < end:
        r = d.cli("logs")
        if "app[run.1]: detached-hello" in r.stdout:
            break
        time.sleep(0.2)
    else:
        pytest.fail(r.stdout)
    assert d.cli("ps:stop", "run.1").returncode == 0


def test_runs_outlive_a_dynod_restart(kept, tmp_path):  # noqa: F811
    """kill -9 of dynod: a detached run.N and an attached session go on
    (re-adopted: dynos.json records run.N), and the next run gets the next
    number."""
    d = kept.start()
    deployed(d, tmp_path)
    r = run(d, "--detach", "--", "sleep", "60")
    assert r.returncode == 0 and r.stdout.endswith("up, run.1\n"), r.stdout
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    attached = subprocess.Popen([str(d.dyno_bin), "run", "--", "sh", "-c",
                                 "echo ready; read line; echo got:$line; exit 4"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    assert attached.stdout.readline() == b"ready\n"
    pids = {x["name"]: x["pid"] for x in d.dynos()}
    assert set(pids) >= {"run.1", "run.2"}, pids
    # recorded (the record's writer coalesces changes): then the crash
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            rec = json.loads((d.state / "dynos.json").read_text())
            if {x["name"] for x in rec["dynos"] if x.get("oneoff")} == {"run.1", "run.2"}:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    d.kill9()
    d.start()
    d.wait(lambda ds: {x["name"]: x["pid"] for x in ds if x["type"] == "run"} ==
           {"run.1": pids["run.1"], "run.2": pids["run.2"]}, what="runs re-adopted")
    # the session never noticed
    out, err = attached.communicate(b"hello\n", timeout=20)
    assert attached.returncode == 4, (out, err)
    assert out == b"got:hello\n", out
    d.wait(lambda ds: "run.2" not in {x["name"] for x in ds}, what="run.2 complete")
    r = run(d, "--detach", "--", "sleep", "1")
    assert r.stdout.endswith("up, run.3\n"), r.stdout
    assert "re-adopted pid %d" % pids["run.1"] in d.log.read_text()
