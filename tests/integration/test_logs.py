"""Logs (runtime/manager/log-intake.c, log-store.c, log-stream.c; cli/cmd-logs.c):
a real dynod (test_router_keeper's KeptDynod: its own network namespace,
kept so that dynod can be started there again) runs real dynos and its
router; `dyno logs` shows the app's output, dynod's lines about the app and
the router's lines, in docs/design.md's format; --tail follows; the log
survives a redeploy and a dynod restart; --dyno and --source filter; control
bytes are escaped on a terminal and raw with --raw."""
import os
import pty
import re
import select
import subprocess
import time
import uuid

import pytest

from test_router_keeper import answers, kept  # noqa: F401 (kept: the fixture)
from test_supervise import all_up, make_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 (app|dyno|router)\[([^\]]+)\]: ")
WEB = "exec python3 -m http.server $PORT --bind 0.0.0.0"
# a worker that says something now and then, and once a control-byte line
WORKER = ("printf 'esc \\033[31mred\\033[0m nul \\000 cr \\r del \\177 end\\n'; "
          "while true; do echo tick $(date +%s%N); sleep 0.3; done")


def logs(d, *args):
    """The lines of `dyno logs`, split on newlines only (an app's CR stays)."""
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    r = subprocess.run([str(d.dyno_bin), "logs", *args], capture_output=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode(errors="replace").split("\n")[:-1]


def wait_logs(d, pred, *args, timeout=15, what="lines"):
    end = time.monotonic() + timeout
    lines = []
    while time.monotonic() < end:
        lines = logs(d, *args)
        if pred(lines):
            return lines
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(lines[-40:]) + "\n" +
                d.log.read_text()[-2000:])


def has(sub):
    return lambda lines: any(sub in ln for ln in lines)


def deploy(d, tmp_path):
    slug = make_app(d, tmp_path, f"web: {WEB}\nworker: {WORKER}\n")
    assert d.cli("apps:create", "app").returncode == 0
    r = d.cli("deploy", slug)
    assert r.returncode == 0, r.stderr
    assert d.cli("ps:scale", "web=1", "worker=1").returncode == 0
    d.wait(all_up(["web.1", "worker.1"]), what="web.1 and worker.1 up")
    answers(d)


def test_logs_show_app_dyno_router_lines_filter_and_survive(kept, tmp_path):
    d = kept.start()
    deploy(d, tmp_path)
    marker = f"/marker-{uuid.uuid4().hex[:8]}"
    assert d.get(marker) == "404"  # http.server logs it (app), the router too
    lines = wait_logs(d, lambda ls: any(f'path="{marker}"' in ln for ln in ls) and
                      any(marker in ln and "app[web.1]" in ln for ln in ls), "-n", "50",
                      what="the marker request's app and router lines")
    assert len(lines) <= 50
    for ln in lines:
        assert LINE.match(ln), ln
    assert any("app[worker.1]: tick" in ln for ln in lines), lines
    router = [ln for ln in lines if marker in ln and " router[router]: " in ln]
    assert router and "host=app.localhost" in router[0] and "status=404" in router[0], router
    # dynod's own lines about the app, older than 50: the default 100
    every = logs(d, "-n", "1500")
    assert any("dyno[web.1]: State changed from starting to up" in ln for ln in every), every
    assert any("dyno[worker.1]: Starting process with command" in ln for ln in every)
    assert any("dyno[api]: Release v1 created" in ln for ln in every), every
    assert any("dyno[api]: Scaled to web@1:standard-1x" in ln for ln in every), every

    # filters: --dyno by type and by name, --source
    w = logs(d, "--dyno", "worker", "-n", "20")
    assert w and all(LINE.match(ln).group(2) == "worker.1" for ln in w), w
    w1 = logs(d, "--dyno", "web.1", "-n", "200")
    assert w1 and all(LINE.match(ln).group(2) == "web.1" for ln in w1), w1
    r = logs(d, "--source", "router", "-n", "20")
    assert r and all(LINE.match(ln).group(1) == "router" for ln in r), r
    s = logs(d, "--source", "dyno", "--dyno", "web", "-n", "200")
    assert s and all(LINE.match(ln).group(1) == "dyno" for ln in s), s
    assert d.cli("logs", "--source", "nope").returncode == 2

    # a redeploy (config:set: release v2, new dynos) keeps the log
    assert d.cli("config:set", "X=1").returncode == 0
    wait_logs(d, has("dyno[api]: Release v2 created"), "-n", "1500", what="v2")
    d.wait(lambda ds: all(x["release"]["version"] == 2 and x["state"] == "up" for x in ds)
           and len(ds) == 2, what="v2 dynos up")
    assert any(marker in ln for ln in logs(d, "-n", "1500")), "marker lost by a redeploy"
    # a dynod restart (SIGTERM, start again) keeps it too
    assert d.stop() == 0
    d.start()
    d.wait(all_up(["web.1", "worker.1"]), what="dynos up after the restart")
    after = logs(d, "-n", "1500")
    assert any(marker in ln for ln in after), "marker lost by a dynod restart"
    assert any("Stopping all processes with SIGTERM" in ln for ln in after), after
    # new lines still come in after the restart
    wait_logs(d, lambda ls: sum("app[worker.1]: tick" in ln for ln in ls[-5:]) > 0, "-n", "5",
              what="ticks after the restart")
    # the files: mode 0600 under the app's directory
    app_dir = d.state / "apps" / "app"
    assert (os.stat(app_dir / "log").st_mode & 0o777) == 0o600
    assert (os.stat(d.state / "sinks" / "app").st_mode & 0o777) == 0o700
    # destroyed with the app
    assert d.cli("apps:destroy", "app", "--confirm", "app").returncode == 0
    assert not (d.state / "sinks" / "app").exists()
    assert d.cli("logs").returncode == 1
    assert d.stop() == 0


def test_tail_streams_new_lines_and_ctrl_c_ends_it(kept, tmp_path):
    d = kept.start()
    deploy(d, tmp_path)
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    p = subprocess.Popen([str(d.dyno_bin), "logs", "--tail", "-n", "1", "--source", "router"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        time.sleep(0.5)  # the stream is open: what follows is new
        marker = f"/tail-{uuid.uuid4().hex[:8]}"
        assert d.get(marker) == "404"
        got = b""
        end = time.monotonic() + 10
        while marker.encode() not in got and time.monotonic() < end:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                got += chunk
        assert marker.encode() in got, (got, p.poll(), d.log.read_text()[-2000:])
        assert b"app[" not in got  # --source router
        p.send_signal(2)  # Ctrl-C
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert d.stop() == 0


def read_pty(argv, env, timeout=10):
    """argv's output through a pseudo-terminal (its stdout is a tty)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=5)
    os.close(master)
    return p.returncode, out


def test_control_bytes_escaped_on_a_terminal_raw_with_raw(kept, tmp_path):
    d = kept.start()
    deploy(d, tmp_path)
    wait_logs(d, has("app[worker.1]: esc"), "--dyno", "worker.1", "-n", "1500",
              what="the control-byte line")
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="app")
    argv = [str(d.dyno_bin), "logs", "-n", "1500", "--dyno", "worker.1"]
    rc, out = read_pty(argv, env)
    assert rc == 0
    line = next(ln for ln in out.split(b"\n") if b"app[worker.1]: esc" in ln)
    assert b"\x1b" not in out and b"\x00" not in out and b"\x7f" not in out, line
    assert (b"esc \\x1b[31mred\\x1b[0m nul \\x00 cr \\x0d del \\x7f end") in line, line
    rc, raw = read_pty(argv + ["--raw"], env)
    assert rc == 0
    assert b"esc \x1b[31mred\x1b[0m nul \x00 cr \r del \x7f end" in raw, raw[-500:]
    # not a terminal (a pipe): the bytes as they are
    r = subprocess.run(argv, capture_output=True, env=env, timeout=30)
    assert b"esc \x1b[31mred\x1b[0m nul \x00 cr \r del \x7f end" in r.stdout
    assert d.stop() == 0
