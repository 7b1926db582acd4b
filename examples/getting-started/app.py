"""The getting-started app: a small web server on Python's standard library.

  python3 app.py web       serve / and /db on $PORT (5000 when unset)
  python3 app.py release   create the visits table when DATABASE_URL is set

/db uses Debian's python3-psycopg2, imported only there, so that the rest
runs under any python3 (`dyno local` included).
"""
import contextlib
import html
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ATTACH = "dyno addons:create postgresql -a getting-started"
TABLE = """CREATE TABLE IF NOT EXISTS visits (
    id serial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    dyno text NOT NULL)"""


def log(msg):
    print(msg, flush=True)


def page(title, body):
    return (f"<!doctype html>\n<title>{html.escape(title)}</title>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}\n").encode()


def database():
    """A connection to DATABASE_URL, closed when the `with` ends."""
    import psycopg2  # only here: / and `dyno local` need no driver
    return contextlib.closing(psycopg2.connect(os.environ["DATABASE_URL"]))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        dyno = os.environ.get("DYNO", "?")
        release = os.environ.get("HEROKU_RELEASE_VERSION", "none")
        path = self.path.split("?", 1)[0]
        if path == "/":
            status, body = 200, page("Getting started with dyno", (
                f"<p>Served by <b id=dyno>{html.escape(dyno)}</b>, "
                f"release <b id=release>{html.escape(release)}</b>.</p>\n"
                f"<p>Greeting: {html.escape(os.environ.get('GREETING', 'hello'))}</p>\n"
                "<p><a href=/db>/db</a> counts visits in the app's database.</p>"))
        elif path == "/db":
            status, body = self.visits(dyno)
        else:
            status, body = 404, page("Not found", f"<p>No page at {html.escape(path)}.</p>")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def visits(self, dyno):
        if not os.environ.get("DATABASE_URL"):
            return 200, page("No database yet", (
                "<p>This app has no DATABASE_URL. Attach a database with</p>\n"
                f"<pre>{ATTACH}</pre>"))
        try:
            with database() as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO visits (dyno) VALUES (%s)", (dyno,))
                cur.execute("SELECT count(*) FROM visits")
                count = cur.fetchone()[0]
                cur.execute("SELECT at, dyno FROM visits ORDER BY id DESC LIMIT 10")
                rows = cur.fetchall()
                conn.commit()
        except Exception as e:  # the page says what went wrong
            log(f"db error: {e}")
            return 500, page("Database error", f"<pre>{html.escape(str(e))}</pre>")
        items = "".join(f"<li>{at:%Y-%m-%d %H:%M:%S} by {html.escape(d)}</li>" for at, d in rows)
        return 200, page("Visits", f"<p id=count>{count} visit{'s' if count != 1 else ''}.</p>\n"
                                   f"<ul>{items}</ul>")

    def log_message(self, fmt, *args):
        # a line per request on stdout, flushed, so `dyno logs` shows it
        log(f"{self.address_string()} {fmt % args}")


def web():
    port = int(os.environ.get("PORT", "5000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    log(f"listening on port {port} as {os.environ.get('DYNO', '?')}")
    server.serve_forever()


def release():
    if not os.environ.get("DATABASE_URL"):
        log("release: no DATABASE_URL, nothing to do")
        return
    with database() as conn, conn.cursor() as cur:
        cur.execute(TABLE)
        conn.commit()
    log("release: table visits ready")


if __name__ == "__main__":
    {"web": web, "release": release}[sys.argv[1] if len(sys.argv) > 1 else "web"]()
