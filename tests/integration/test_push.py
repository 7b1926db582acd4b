"""Deploy by git push (docs/deploy.md; cli/cmd-git.c, POST /apps/{app}/builds):
a push to main builds the pushed tree and releases it through a rollout
(no request fails meanwhile), a bad Procfile refuses the push with its
line and the old release serves on, other branches are stored and not
built, pushes are serialized per app, and over ssh a key limited with
`git-receive --apps` reaches only those apps."""
import json
import os
import subprocess
import time

import pytest

from loadkit import Load
from test_router_keeper import answers, kept  # noqa: F401 (the fixture)
from test_supervise import WEB

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
              pytest.mark.heavy]

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(cwd, *args, check=True, env=None, timeout=120):
    e = dict(os.environ, **GIT_ENV, **(env or {}))
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=e,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"git {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def work_tree(tmp_path, name, version, procfile=f"web: {WEB}\n"):
    src = tmp_path / name
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "Procfile").write_text(procfile)
    (src / "version.txt").write_text(version)
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", version)
    return src


def commit(src, version, procfile=None):
    (src / "version.txt").write_text(version)
    if procfile is not None:
        (src / "Procfile").write_text(procfile)
    git(src, "commit", "-q", "-am", version)
    return git(src, "rev-parse", "HEAD").stdout.strip()


def remote(d, src, app="app"):
    """dyno git:remote inside the work tree: the repository's path."""
    env = dict(os.environ, DYNO_API=d.sock)
    r = subprocess.run([str(d.dyno_bin), "git:remote", "-a", app], cwd=src,
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def version(d, app="app"):
    r = d.netns("curl", "-s", "-H", f"Host: {app}.localhost", "http://127.0.0.1:8080/version.txt")
    return r.stdout


def test_push_builds_releases_and_refuses(kept, tmp_path):  # noqa: F811
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = work_tree(tmp_path, "src", "one\n")
    url = remote(d, src)
    assert url == str(d.state / "repos" / "app.git")
    assert git(src, "remote", "get-url", "dyno").stdout.strip() == url
    mode = os.stat(url).st_mode
    assert mode & 0o070 == 0o070, oct(mode)  # api_group pushes too

    r = git(src, "push", "-q", "dyno", "main")
    out = r.stderr
    assert "remote: -----> Building main (" in out, out
    assert "remote: -----> Released v1" in out and "remote: done, v1" in out, out
    sha1 = git(src, "rev-parse", "HEAD").stdout.strip()
    rels = json.loads(d.cli("releases", "--json").stdout)
    assert rels[-1]["description"] == f"Deploy {sha1[:7]}"
    answers(d)
    assert version(d) == "one\n"

    # a change under load: served without a failed request
    load = Load(d.ns, tmp_path, path="/version.txt")
    try:
        sha2 = commit(src, "two\n")
        r = git(src, "push", "-q", "dyno", "main")
    finally:
        out = load.stop()
    print(f"\npush under load: {out.requests} requests, {out.status}, "
          f"{len(out.errors)} errors")
    assert out.errors == [] and list(out.status) == ["200"], out
    assert version(d) == "two\n"
    assert json.loads(d.cli("releases", "--json").stdout)[-1]["description"] == \
        f"Deploy {sha2[:7]}"

    # a bad Procfile: refused with its line, v2 serves on, main not moved
    commit(src, "three\n", procfile="web: ok\nnot a line\n")
    r = git(src, "push", "dyno", "main", check=False)
    assert r.returncode != 0
    assert "Procfile line 2: expected \"name: command\"" in r.stderr, r.stderr
    assert "remote: dyno: push refused" in r.stderr, r.stderr
    assert "[remote rejected] main -> main (pre-receive hook declined)" in r.stderr
    assert git(url, "rev-parse", "main").stdout.strip() == sha2
    assert version(d) == "two\n"

    # no Procfile, and binary junk: refused, named; nothing moves
    git(src, "rm", "-q", "Procfile")
    (src / "junk.bin").write_bytes(os.urandom(4096) + b"\0" * 100)
    git(src, "add", "junk.bin")
    git(src, "commit", "-q", "-m", "no procfile")
    r = git(src, "push", "dyno", "main", check=False)
    assert r.returncode != 0, r.stderr
    assert "remote: dyno: error: build " in r.stderr and "App not compatible with any " \
        "built-in buildpack" in r.stderr and "procfile a Procfile" in r.stderr, r.stderr
    assert git(url, "rev-parse", "main").stdout.strip() == sha2
    # bytes that are no git protocol at all, to the forced command's git
    junk = subprocess.run(["git", "receive-pack", url], input=os.urandom(512),
                          capture_output=True, timeout=30)
    assert junk.returncode != 0
    assert git(url, "rev-parse", "main").stdout.strip() == sha2
    assert version(d) == "two\n"
    assert len(json.loads(d.cli("releases", "--json").stdout)) == 2

    # another branch: stored, not built
    git(src, "checkout", "-q", "-b", "feature")
    r = git(src, "push", "dyno", "feature")
    assert "remote: -----> refs/heads/feature stored, not built" in r.stderr, r.stderr
    assert len(json.loads(d.cli("releases", "--json").stdout)) == 2

    # destroyed with its app
    assert d.cli("apps:destroy", "--confirm", "app").returncode == 0
    assert not os.path.exists(url)


def test_pushes_at_once_and_ssh_keys(kept, tmp_path):  # noqa: F811
    d = kept.start()
    for app in ("app", "other"):
        assert d.cli("apps:create", app).returncode == 0
    a = work_tree(tmp_path, "a", "a1\n")
    b = work_tree(tmp_path, "b", "b1\n")
    remote(d, a, "app")
    remote(d, b, "other")
    # two apps at once
    env = dict(os.environ, **GIT_ENV)
    pa = subprocess.Popen(["git", "push", "-q", "dyno", "main"], cwd=a, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pb = subprocess.Popen(["git", "push", "-q", "dyno", "main"], cwd=b, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert pa.wait(timeout=120) == 0, pa.stderr.read()
    assert pb.wait(timeout=120) == 0, pb.stderr.read()
    answers(d)
    assert version(d, "app") == "a1\n" and version(d, "other") == "b1\n"

    # two pushes to one app in quick succession, the second on top of the
    # first: serialized; the second builds after the first, or is refused
    # (it waited while main moved) and deploys nothing
    commit(a, "a2\n")
    p1 = subprocess.Popen(["git", "push", "dyno", "main"], cwd=a, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    sha3 = commit(a, "a3\n")
    p2 = subprocess.Popen(["git", "push", "dyno", "main"], cwd=a, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p1.wait(timeout=120) == 0, p1.stderr.read()
    rc2, err2 = p2.wait(timeout=120), p2.stderr.read()
    print("\nsecond push:", rc2, err2)
    repo = str(d.state / "repos" / "app.git")
    head = git(repo, "rev-parse", "main").stdout.strip()
    rels = json.loads(d.cli("releases", "--json", "-a", "app").stdout)
    assert [r["status"] for r in rels] == ["succeeded"] * len(rels), rels
    assert rels[-1]["description"] == f"Deploy {head[:7]}"
    if rc2 == 0:
        assert head == sha3 and len(rels) == 3
    else:
        assert "moved while this push waited" in err2, err2
        assert len(rels) == 2
        git(a, "push", "-q", "dyno", "main")  # again, on top: builds
        assert git(repo, "rev-parse", "main").stdout.strip() == sha3
    assert version(d, "app") == "a3\n"

    # ssh: a key limited to `app` (the forced command of authorized_keys)
    fake = tmp_path / "fake-ssh"
    fake.write_text("#!/bin/sh\n# ssh [options] HOST COMMAND: as sshd runs a forced command\n"
                    "for last; do :; done\n"
                    f"SSH_ORIGINAL_COMMAND=\"$last\" DYNO_API={d.sock} "
                    f"exec {d.dyno_bin} git-receive --apps app\n")
    fake.chmod(0o755)
    ssh = {"GIT_SSH_COMMAND": str(fake)}
    commit(a, "a4\n")
    git(a, "push", "-q", "ssh://dyno@example.invalid/app.git", "main", env=ssh)
    assert version(d, "app") == "a4\n"
    r = git(b, "push", "ssh://dyno@example.invalid/other.git", "main", env=ssh, check=False)
    assert r.returncode != 0 and "this key may not push to other" in r.stderr, r.stderr
    r = git(b, "push", "ssh://dyno@example.invalid/../../etc.git", "main", env=ssh,
            check=False)
    assert r.returncode != 0 and "not an app's repository" in r.stderr, r.stderr
