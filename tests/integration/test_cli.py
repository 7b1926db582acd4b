"""The CLI's surface: help, version, usage errors and exit statuses."""


def test_help_lists_verbs(dyno):
    r = dyno("--help")
    assert r.returncode == 0
    for verb in ("slugs:create", "slugs:inspect", "slugs:unpack", "help"):
        assert verb in r.stdout


def test_version(dyno):
    r = dyno("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("dyno ")


def test_help_verb(dyno):
    r = dyno("help", "slugs:unpack")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: dyno slugs:unpack FILE DIR")
    assert dyno("slugs:unpack", "--help").stdout == r.stdout


def test_unknown_verb_is_usage_error(dyno):
    r = dyno("frobnicate")
    assert r.returncode == 2
    assert 'unknown verb "frobnicate"' in r.stderr


def test_missing_arguments_are_usage_errors(dyno):
    assert dyno().returncode == 2
    r = dyno("slugs:create", "somedir")
    assert r.returncode == 2
    assert "missing -o FILE" in r.stderr
    assert "usage: dyno slugs:create" in r.stderr
    r = dyno("slugs:unpack", "only-one")
    assert r.returncode == 2
    r = dyno("slugs:inspect", "x", "--bogus")
    assert r.returncode == 2
    assert "unknown option --bogus" in r.stderr
    r = dyno("help", "nope")
    assert r.returncode == 2


def test_options_in_any_order(dyno, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: ./server\n")
    out = tmp_path / "s.tgz"
    r = dyno("slugs:create", "-o", out, app)
    assert r.returncode == 0, r.stderr
    r = dyno("slugs:inspect", "--json", out)
    assert r.returncode == 0
    r2 = dyno("slugs:inspect", out, "--json")
    assert r2.stdout == r.stdout


def test_error_goes_to_stderr_with_status_1(dyno, tmp_path):
    r = dyno("slugs:inspect", tmp_path / "missing.tgz")
    assert r.returncode == 1
    assert r.stderr.startswith("dyno: error: ")
    assert "missing.tgz" in r.stderr
    assert r.stdout == ""
