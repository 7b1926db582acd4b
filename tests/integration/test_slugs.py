"""dyno slugs:create / slugs:inspect / slugs:unpack, as a user runs them."""
import hashlib
import json
import os
import stat
import subprocess
import tarfile
import time
import uuid

import pytest

import slugkit as sk


def make_app(root, procfile="web: ./server\nworker: ./work\n"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "Procfile").write_text(procfile)
    (root / "bin").mkdir(exist_ok=True)
    (root / "bin" / "server").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "server").chmod(0o755)
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "data.txt").write_text("data\n" * 100)
    (root / "lib" / "link").symlink_to("data.txt")
    return root


def listing(path):
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for n in sorted(dirnames + filenames):
            out.append(os.path.relpath(os.path.join(dirpath, n), path))
    return sorted(out)


def test_roundtrip(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    slug = tmp_path / "app.tgz"
    r = dyno("slugs:create", app, "-o", slug)
    assert r.returncode == 0, r.stderr
    names = tarfile.open(slug).getnames()
    assert names[0] == "./app"
    assert all(n == "./app" or n.startswith("./app/") for n in names)

    r = dyno("slugs:inspect", slug, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["id"] == hashlib.sha256(slug.read_bytes()).hexdigest()
    assert info["size"] == slug.stat().st_size
    assert info["process_types"] == {"web": "./server", "worker": "./work"}
    assert info["compression"] == "gzip"
    assert info["entries"] == len(names)

    out = tmp_path / "out"
    r = dyno("slugs:unpack", slug, out)
    assert r.returncode == 0, r.stderr
    assert (out / "Procfile").read_text() == (app / "Procfile").read_text()
    assert (out / "lib" / "data.txt").read_text() == "data\n" * 100
    assert os.readlink(out / "lib" / "link") == "data.txt"
    assert (out / "bin" / "server").stat().st_mode & 0o777 == 0o755
    assert listing(out) == listing(app)


def test_pack_is_deterministic(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    assert dyno("slugs:create", app, "-o", a).returncode == 0
    # new mtimes and a second later: the bytes must not change
    time.sleep(1.1)
    for p in app.rglob("*"):
        if not p.is_symlink():
            os.utime(p)
    assert dyno("slugs:create", app, "-o", b).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tf:
        for m in tf.getmembers():
            assert (m.uid, m.gid, m.mtime) == (0, 0, 0)


def test_zstd_and_plain(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    for comp in ("zstd", "none"):
        slug = tmp_path / f"s.{comp}"
        r = dyno("slugs:create", app, "-o", slug, "--compression", comp)
        assert r.returncode == 0, r.stderr
        info = json.loads(dyno("slugs:inspect", slug, "--json").stdout)
        assert info["compression"] == comp
        out = tmp_path / f"out-{comp}"
        assert dyno("slugs:unpack", slug, out).returncode == 0
        assert listing(out) == listing(app)
    if subprocess.run(["zstd", "-t", str(tmp_path / "s.zstd")], capture_output=True).returncode:
        pytest.fail("zstd does not accept the slug")


def test_compression_from_the_name(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    magic = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "none": b"./app"}
    for name, comp in (("a.tgz", "gzip"), ("a.tar.gz", "gzip"), ("a.tar.zst", "zstd"),
                       ("a.tar", "none"), ("a.slug", "gzip")):
        slug = tmp_path / name
        r = dyno("slugs:create", app, "-o", slug)
        assert r.returncode == 0, r.stderr
        assert f", {comp}," in r.stdout
        assert slug.read_bytes().startswith(magic[comp]), name
        info = json.loads(dyno("slugs:inspect", slug, "--json").stdout)
        assert info["compression"] == comp
    # --compression wins over the name
    slug = tmp_path / "b.tgz"
    assert dyno("slugs:create", app, "-o", slug, "--compression", "zstd").returncode == 0
    assert slug.read_bytes().startswith(magic["zstd"])


def test_gzip_fallback_and_corrupt(dyno, tmp_path):
    """ISA-L inflates gzip slugs; DYNO_GUNZIP=zlib (libarchive's zlib) gives
    the same tree; a bad CRC-32 is refused saying so."""
    app = make_app(tmp_path / "src")
    slug = tmp_path / "s.tgz"
    assert dyno("slugs:create", app, "-o", slug).returncode == 0
    a, b = tmp_path / "isal", tmp_path / "zlib"
    assert dyno("slugs:unpack", slug, a).returncode == 0
    r = dyno("slugs:unpack", slug, b, env=dict(os.environ, DYNO_GUNZIP="zlib"))
    assert r.returncode == 0, r.stderr
    assert listing(a) == listing(b) == listing(app)
    assert (a / "lib" / "data.txt").read_bytes() == (b / "lib" / "data.txt").read_bytes()
    bad = bytearray(slug.read_bytes())
    bad[-8] ^= 0xFF
    (tmp_path / "bad.tgz").write_bytes(bad)
    r = dyno("slugs:unpack", tmp_path / "bad.tgz", tmp_path / "bad")
    assert r.returncode == 1
    assert "gzip: bad CRC-32 or length in the trailer of member 1" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_slugignore(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    (app / ".slugignore").write_text("# big files\n*.psd\n/tmp/\nspec\n")
    (app / "design.psd").write_text("x")
    (app / "lib" / "nested.psd").write_text("x")
    (app / "tmp").mkdir()
    (app / "tmp" / "cache").write_text("x")
    (app / "lib" / "tmp").mkdir()
    (app / "lib" / "tmp" / "keep").write_text("x")
    (app / "spec").mkdir()
    (app / "spec" / "a_spec.rb").write_text("x")
    slug = tmp_path / "s.tgz"
    assert dyno("slugs:create", app, "-o", slug).returncode == 0
    names = set(tarfile.open(slug).getnames())
    assert "./app/design.psd" not in names
    assert "./app/lib/nested.psd" not in names
    assert "./app/tmp" not in names and "./app/tmp/cache" not in names
    assert "./app/lib/tmp/keep" in names  # /tmp/ is anchored at the root
    assert not any(n.startswith("./app/spec") for n in names)


def test_pack_refuses_dir_without_procfile(dyno, tmp_path):
    (tmp_path / "src").mkdir()
    r = dyno("slugs:create", tmp_path / "src", "-o", tmp_path / "s.tgz")
    assert r.returncode == 1
    assert "has no Procfile" in r.stderr
    assert not (tmp_path / "s.tgz").exists()
    assert listing(tmp_path) == ["src"]


def test_pack_refuses_bad_procfile_with_line(dyno, tmp_path):
    app = make_app(tmp_path / "src", procfile="web: ./server\n\nbad line\n")
    r = dyno("slugs:create", app, "-o", tmp_path / "s.tgz")
    assert r.returncode == 1
    assert "Procfile line 3: expected \"name: command\"" in r.stderr


def test_pack_refuses_escaping_link_and_fifo(dyno, tmp_path):
    app = make_app(tmp_path / "src")
    (app / "etc").symlink_to("/etc")
    r = dyno("slugs:create", app, "-o", tmp_path / "s.tgz")
    assert r.returncode == 1
    assert "not under /app/" in r.stderr and "etc" in r.stderr
    (app / "etc").unlink()
    os.mkfifo(app / "pipe")
    r = dyno("slugs:create", app, "-o", tmp_path / "s.tgz")
    assert r.returncode == 1
    assert "pipe: a fifo cannot go into a slug" in r.stderr
    assert not (tmp_path / "s.tgz").exists()


EVIL = f"dyno-evil-{uuid.uuid4().hex[:8]}"

# (id, entries, what the message must contain)
HOSTILE = [
    ("absolute", [sk.PROCFILE, sk.file(f"/tmp/{EVIL}", b"x")], f'"/tmp/{EVIL}": absolute path'),
    ("dotdot", [sk.PROCFILE, sk.file(f"./app/../{EVIL}", b"x")], '".." component'),
    ("dotdot-deep", [sk.PROCFILE, sk.file(f"app/a/../../../tmp/{EVIL}", b"x")], '".." component'),
    ("outside-app", [sk.PROCFILE, sk.file(f"./{EVIL}", b"x")], "outside app/"),
    ("outside-app-prefix", [sk.PROCFILE, sk.file("./application/x", b"x")], "outside app/"),
    ("link-relative-escape", [sk.PROCFILE, sk.symlink("./app/l", "../../etc")], "leaves app/"),
    ("link-absolute-outside", [sk.PROCFILE, sk.symlink("./app/l", "/etc/passwd")],
     '"/etc/passwd" is not under /app/'),
    ("link-absolute-app-prefix", [sk.PROCFILE, sk.symlink("./app/l", "/application")],
     "not under /app/"),
    ("entry-under-link", [sk.PROCFILE, sk.dir_("./app/sub"), sk.symlink("./app/l", "sub"),
                          sk.file("./app/l/x", b"x")], "is under the link app/l"),
    ("write-through-link", [sk.PROCFILE, sk.symlink("./app/l", "/app/sub"),
                            sk.file("./app/l", b"x")], "changes the type"),
    ("link-chain-escape", [sk.PROCFILE, sk.symlink("./app/a", "/app"),
                           sk.symlink("./app/b", f"a/../tmp/{EVIL}")], "leaves app/"),
    ("link-later-changes-earlier", [sk.PROCFILE, sk.symlink("./app/b", f"l/../{EVIL}"),
                                    sk.symlink("./app/l", "/app")], '"app/b"'),
    ("link-loop", [sk.PROCFILE, sk.symlink("./app/a", "b/x"), sk.symlink("./app/b", "a/y"),
                   sk.symlink("./app/c", "a")], "too many levels"),
    ("hardlink-outside", [sk.PROCFILE, sk.hardlink("./app/h", "/etc/passwd")],
     "hard link to"),
    ("hardlink-dotdot", [sk.PROCFILE, sk.hardlink("./app/h", "./app/../../etc/passwd")],
     "hard link to"),
    ("hardlink-unknown", [sk.PROCFILE, sk.hardlink("./app/h", "./app/nothere")],
     "not an earlier file"),
    ("chardev", [sk.PROCFILE, sk.chardev("./app/null")], "character device"),
    ("fifo", [sk.PROCFILE, sk.fifo("./app/pipe")], "fifos are not allowed"),
    ("control-char", [sk.PROCFILE, sk.file("./app/a\nb", b"x")], "control character 0x0a"),
    ("long-component", [sk.PROCFILE, sk.file("./app/" + "n" * 256, b"x")],
     "component longer than 255"),
    ("too-deep", [sk.PROCFILE, sk.file("./app/" + "d/" * 300 + "f", b"x")],
     "path deeper than 256 levels"),
    ("file-then-dir", [sk.PROCFILE, sk.file("./app/x", b"x"), sk.file("./app/x/y", b"y")],
     "is under the file app/x"),
    ("dir-then-link", [sk.PROCFILE, sk.dir_("./app/d"), sk.symlink("./app/d", "/app")],
     "changes the type of an earlier entry (directory, then link)"),
    ("dir-then-file", [sk.PROCFILE, sk.dir_("./app/d"), sk.file("./app/d", b"x")],
     "changes the type"),
    ("app-is-link", [sk.symlink("./app", "/etc"), sk.PROCFILE], "app/ must be a directory"),
    ("no-procfile", [sk.file("./app/README", b"x")], "no Procfile"),
    ("bad-procfile", [sk.file("./app/Procfile", b"web: ok\nrun: nope\n")],
     'Procfile line 2: process type name "run" is reserved'),
    ("procfile-link", [sk.file("./app/real", b"web: x\n"), sk.symlink("./app/Procfile", "real")],
     "the Procfile must be a regular file"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_slug_refused(dyno, tmp_path, case):
    _, entries, expect = case
    work = tmp_path / "work"
    work.mkdir()
    slug = sk.build(tmp_path / "evil.tgz", entries)
    target = work / "out"
    before = listing(tmp_path)

    r = dyno("slugs:unpack", slug, target, cwd=work)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("dyno: error: ")
    assert expect in r.stderr, r.stderr
    assert not target.exists()
    assert listing(tmp_path) == before  # no DIR, no temporary sibling, nothing else
    assert not os.path.lexists(f"/tmp/{EVIL}")
    assert not os.path.lexists(f"/{EVIL}")

    r2 = dyno("slugs:inspect", slug)
    assert r2.returncode == 1
    assert expect in r2.stderr


def test_refused_entry_is_named(dyno, tmp_path):
    slug = sk.build(tmp_path / "e.tgz", [sk.PROCFILE, sk.file("./app/ok", b"x"),
                                         sk.file("./app/../evil", b"x")])
    r = dyno("slugs:unpack", slug, tmp_path / "out")
    assert 'refused entry "./app/../evil": path has a ".." component' in r.stderr


def test_setuid_and_setgid_stripped(dyno, tmp_path):
    slug = sk.build(tmp_path / "s.tgz", [sk.PROCFILE, sk.file("./app/suid", b"#!/bin/sh\n", 0o6755),
                                         sk.dir_("./app/sticky", 0o1777)])
    out = tmp_path / "out"
    r = dyno("slugs:unpack", slug, out)
    assert r.returncode == 0, r.stderr
    mode = (out / "suid").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755
    assert not mode & (stat.S_ISUID | stat.S_ISGID)
    assert stat.S_IMODE((out / "sticky").stat().st_mode) == 0o777


def test_archive_owner_not_kept(dyno, tmp_path):
    path = tmp_path / "o.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in (("./app/Procfile", b"web: x\n"), ("./app/f", b"y")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid = len(data), 4242, 4343
            import io
            tf.addfile(ti, io.BytesIO(data))
    out = tmp_path / "out"
    assert dyno("slugs:unpack", path, out).returncode == 0
    st = (out / "f").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_declared_size_over_limit_refused_before_data(dyno, tmp_path):
    # 5 GiB declared, no data: refused at the header with the default limit (4G)
    slug = sk.header_only(tmp_path / "h.tgz", "./app/huge", 5 << 30)
    out = tmp_path / "out"
    r = dyno("slugs:unpack", slug, out)
    assert r.returncode == 1
    assert 'refused entry "./app/huge": declares 5368709120 bytes' in r.stderr
    assert "limit of 4294967296 bytes" in r.stderr
    assert not out.exists()


def test_gzip_bomb_stops_early(dyno, tmp_path):
    slug = sk.zeros_bomb(tmp_path / "bomb.tgz", "./app/zeros", 256 << 20)
    assert slug.stat().st_size < 1 << 20
    work = tmp_path / "work"
    work.mkdir()
    r = dyno("slugs:unpack", slug, work / "out", "--max-unpacked", "16M")
    assert r.returncode == 1
    assert 'refused entry "./app/zeros": declares 268435456 bytes' in r.stderr
    assert listing(work) == []


def test_entry_and_compressed_limits(dyno, tmp_path):
    entries = [sk.PROCFILE] + [sk.file(f"./app/f{i}", b"x") for i in range(20)]
    slug = sk.build(tmp_path / "many.tgz", entries)
    r = dyno("slugs:unpack", slug, tmp_path / "out", "--max-entries", "10")
    assert r.returncode == 1
    assert "more than 10 entries" in r.stderr
    r = dyno("slugs:unpack", slug, tmp_path / "out", "--max-compressed", "100")
    assert r.returncode == 1
    assert "over the limit of 100 bytes" in r.stderr
    assert not (tmp_path / "out").exists()
    r = dyno("slugs:unpack", slug, tmp_path / "out", "--max-entries", "ten")
    assert r.returncode == 2


def test_unpack_refuses_existing_dir_and_missing_parent(dyno, tmp_path):
    slug = sk.build(tmp_path / "s.tgz", [sk.PROCFILE])
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep").write_text("mine")
    r = dyno("slugs:unpack", slug, tmp_path / "exists")
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert (tmp_path / "exists" / "keep").read_text() == "mine"
    r = dyno("slugs:unpack", slug, tmp_path / "no" / "such" / "dir")
    assert r.returncode == 1
    assert "parent directory" in r.stderr


def test_not_a_slug(dyno, tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"this is not an archive at all" * 10)
    r = dyno("slugs:unpack", bad, tmp_path / "out")
    assert r.returncode == 1
    assert "not a slug" in r.stderr
    assert not (tmp_path / "out").exists()


def test_plain_app_prefix_and_duplicates(dyno, tmp_path):
    slug = sk.build(tmp_path / "s.tar", [sk.file("app/Procfile", b"web: old\n"),
                                         sk.file("app/Procfile", b"web: new\n"),
                                         sk.symlink("app/l", "Procfile"),
                                         sk.symlink("app/l", "/app/Procfile"),
                                         sk.hardlink("app/h", "app/Procfile")],
                    compression="none")
    info = json.loads(dyno("slugs:inspect", slug, "--json").stdout)
    assert info["process_types"] == {"web": "new"}
    out = tmp_path / "out"
    r = dyno("slugs:unpack", slug, out)
    assert r.returncode == 0, r.stderr
    assert (out / "Procfile").read_text() == "web: new\n"
    assert os.readlink(out / "l") == "/app/Procfile"
    assert (out / "h").read_text() == "web: new\n"


def test_interrupted_unpack_leaves_nothing(dyno_bin, tmp_path):
    # a slow reader: the slug comes through a pipe that we stop feeding
    slug = sk.build(tmp_path / "s.tar", [sk.PROCFILE] +
                    [sk.file(f"./app/f{i}", os.urandom(4096)) for i in range(64)],
                    compression="none")
    data = slug.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    p = subprocess.Popen([str(dyno_bin), "slugs:unpack", "-", str(work / "out")],
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data[: len(data) // 2])
    p.stdin.flush()
    deadline = time.time() + 10
    while time.time() < deadline and not any(n.startswith(".out.unpack-") for n in os.listdir(work)):
        time.sleep(0.02)
    time.sleep(0.2)
    p.terminate()
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    p.wait(timeout=10)
    err = p.stderr.read()
    p.stderr.close()
    assert p.returncode == 1
    assert b"interrupted" in err
    assert os.listdir(work) == []


def test_truncated_slug_refused(dyno, tmp_path):
    slug = sk.build(tmp_path / "s.tar", [sk.PROCFILE] +
                    [sk.file(f"./app/f{i}", b"x" * 1000) for i in range(6)], compression="none")
    cut_at = tarfile.open(slug).getmembers()[4].offset  # an entry boundary
    cut = tmp_path / "cut.tar"
    cut.write_bytes(slug.read_bytes()[:cut_at])
    r = dyno("slugs:unpack", cut, tmp_path / "out")
    assert r.returncode == 1
    assert "slug is truncated" in r.stderr
    assert not (tmp_path / "out").exists()
    gz = tmp_path / "cut.tgz"
    gz.write_bytes(sk.build(tmp_path / "g.tgz", [sk.PROCFILE]).read_bytes()[:-12])
    r = dyno("slugs:unpack", gz, tmp_path / "out")
    assert r.returncode == 1
    assert "(null)" not in r.stderr
