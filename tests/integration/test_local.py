"""dyno local: the Procfile's processes on this machine, as heroku local."""
import re
import signal
import subprocess
import time


def write_app(d, procfile, env=None):
    (d / "Procfile").write_text(procfile)
    if env is not None:
        (d / ".env").write_text(env)


def test_runs_every_type_with_ports_and_env(dyno, tmp_path):
    write_app(tmp_path,
              'web: echo "web PORT=$PORT DYNO=$DYNO G=$GREETING"; sleep 0.5\n'
              "worker: echo \"worker PORT=$PORT\"; exec sleep 30\n",
              "# settings\nexport GREETING='hello world'\n")
    r = dyno("local", cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d web\.1 +\| web PORT=5006 DYNO=web\.1 G=hello world", l)
               for l in lines), lines
    assert any(l.endswith("| worker PORT=5106") for l in lines), lines
    assert any("web.1" in l and "Exited with exit code 0" in l for l in lines)
    # the worker was stopped when web exited
    assert any("worker.1" in l and "Exited with signal" in l for l in lines)


def test_one_type_base_port_and_env_file(dyno, tmp_path):
    write_app(tmp_path, "web: echo web\nclock: echo \"clock $PORT $X\"; exit 3\n")
    (tmp_path / "other.env").write_text('X="a\\nb"\n')
    r = dyno("local", "clock", "-p", "7000", "-e", "other.env", cwd=tmp_path, timeout=30)
    assert r.returncode == 3
    out = r.stdout
    assert "| clock 7100 a" in out and "| b" in out
    assert "web" not in out.replace("clock", "")
    assert "Exited with exit code 3" in out


def test_sigint_stops_all_and_exits_0(dyno_bin, tmp_path):
    write_app(tmp_path, "a: echo started; exec sleep 60\nb: exec sleep 60\n")
    p = subprocess.Popen([str(dyno_bin), "local"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "started" in p.stdout.readline()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert "Interrupt received" in out
    assert out.count("Exited with signal") == 2


def test_errors(dyno, tmp_path):
    r = dyno("local", cwd=tmp_path)
    assert r.returncode == 1 and "Procfile: No such file or directory" in r.stderr
    write_app(tmp_path, "web: x\nweb: y\n")
    r = dyno("local", cwd=tmp_path)
    assert r.returncode == 1 and "Procfile line 2: duplicate process type" in r.stderr
    write_app(tmp_path, "web: x\n", "BAD LINE\n")
    r = dyno("local", cwd=tmp_path)
    assert r.returncode == 1 and ".env: .env line 1:" in r.stderr
    (tmp_path / ".env").unlink()
    r = dyno("local", "nope", cwd=tmp_path)
    assert r.returncode == 1 and 'no process type "nope"' in r.stderr
    r = dyno("local", "-p", "notaport", cwd=tmp_path)
    assert r.returncode == 2
    r = dyno("local", "-e", "missing.env", cwd=tmp_path)
    assert r.returncode == 1 and "missing.env" in r.stderr


def test_release_runs_only_when_named(dyno, tmp_path):
    # as heroku local: the release phase is not one of the app's processes
    write_app(tmp_path, 'web: echo "web $PORT"\nrelease: echo migrated\n')
    r = dyno("local", cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "| web 5006" in r.stdout and "migrated" not in r.stdout and "release" not in r.stdout
    r = dyno("local", "release", cwd=tmp_path, timeout=30)
    assert r.returncode == 0 and "release.1 | migrated" in r.stdout.replace("  ", " "), r.stdout
