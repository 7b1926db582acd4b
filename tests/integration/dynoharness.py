"""Scenarios for test_launch.py, each run inside a private network namespace
made by the test (`unshare -n`, then `ip link set lo up`): `python3
dynoharness.py SCENARIO` starts real dynos with dyno-launch and the probe,
plays the host's part (log sink, TCP clients and servers) and prints one
JSON object with what it saw as its last line. Everything it creates is
named after its own pid, and removed: dynos (by their launcher's pid),
cgroups, sockets, files."""
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DYNO_BUILD", ROOT / "build"))
LAUNCH = BUILD / "bin" / "dyno-launch"
PROBE = BUILD / "tests" / "probe" / "probe"
UID = 20000 + os.getpid() % 20000
CG_PARENT = f"dyno-test-{os.getpid()}"
CONTROLLERS = ("memory", "pids", "cpu")
# DYNO_TEST_POOL=N: every dyno is taken from a warm pool of N prepared
# ones (dyno-launch --pool N); its id is then its pool entry's
POOL = int(os.environ.get("DYNO_TEST_POOL", "0"))


class Sink:
    """The log intake: a Unix datagram socket collecting app lines."""

    def __init__(self, path, bind=True):
        self.path = str(path)
        self.sock = None
        self.lines = []
        self.datagrams = 0
        if bind:
            self.bind()

    def bind(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def pump(self, timeout):
        # Bounded in time and count: a dyno that floods its output (yes)
        # would otherwise keep this loop reading forever.
        end = time.monotonic() + max(timeout, 0.05)
        self.sock.settimeout(timeout)
        try:
            while time.monotonic() < end and len(self.lines) < 200000:
                # init packs a backlog: several lines in one datagram
                self.lines.extend(self.sock.recv(65536).decode(errors="replace").split("\n"))
                self.datagrams += 1
                self.sock.settimeout(0.01)
        except (socket.timeout, BlockingIOError):
            pass

    def messages(self):
        """The message part of each line: after "app[NAME]: "."""
        out = []
        for line in self.lines:
            _, _, rest = line.partition(" ")
            _, _, msg = rest.partition(": ")
            out.append(msg)
        return out

    def wait_for(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.messages():
                if pred(m):
                    return m
            self.pump(0.1)
        return None

    def json(self, probe, timeout=10.0):
        def match(m):
            return m.startswith("{") and f'"probe":"{probe}"' in m

        m = self.wait_for(match, timeout)
        return json.loads(m) if m else None


class Dyno:
    count = 0

    def __init__(self, h, cmd, name="web.1", memory="64M", pids=64, port=None, extra=(),
                 sink=True, prefix=(), sink_dir=None, before_start=None):
        Dyno.count += 1
        self.id = self.launch_id = f"t{os.getpid()}-{Dyno.count}"
        if POOL and "--pool" not in extra:
            extra = (*extra, "--pool", str(POOL))
        # the sinks' own directory: the launcher binds it into the dyno
        # and refuses one that holds anything but sockets
        self.sink = Sink(Path(sink_dir or h.sinks) / f"{self.id}.sock", bind=sink)
        args = [*prefix, str(LAUNCH), "--slug-dir", str(h.slug), "--uid", str(UID), "--name", name,
                "--id", self.id, "--memory", memory, "--pids", str(pids), "--log-sock",
                self.sink.path, "--cgroup-parent", CG_PARENT, "--grace", "2", *extra]
        if port:
            args += ["--port", str(port)]
        if before_start:  # dyno-launch --hold: its pool is looked at first
            args.append("--hold")
        self.proc = subprocess.Popen(args + ["--", cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.PIPE if before_start else None)
        h.dynos.append(self)
        self.events = []
        if before_start:
            self.pool_event = json.loads(self.proc.stdout.readline() or "null")
            self.held = before_start(self)
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            self.error = self.proc.stderr.read().strip()
            if "Sanitizer" in self.error or "runtime error:" in self.error:
                raise RuntimeError(f"dyno-launch {self.id}: {self.error}")
            self.running = None
            return
        self.error = None
        self.running = json.loads(line)
        self.ip = self.running["addr"]
        self.id = self.running["id"]  # a pooled dyno's is its entry's

    def finish(self, timeout=20):
        """Waits for the launcher; returns the "exited" event."""
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr = err
        # a sanitizer build's report (leak, overflow) fails the scenario
        if "Sanitizer" in err or "runtime error:" in err:
            raise RuntimeError(f"dyno-launch {self.id}: {err}")
        for line in out.splitlines():
            self.events.append(json.loads(line))
        return next((e for e in self.events if e["event"] == "exited"), None)

    def stop(self, timeout=20):
        self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)


class Harness:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="dyno-launch-"))
        os.chmod(self.tmp, 0o755)
        self.slug = self.tmp / "slug"
        self.sinks = self.tmp / "sinks"
        self.sinks.mkdir()
        (self.slug / "bin").mkdir(parents=True)
        (self.slug / ".profile.d").mkdir()
        shutil.copy(PROBE, self.slug / "bin" / "probe")
        (self.slug / ".profile.d" / "probe.sh").write_text("export PROFILE_D=sourced\n")
        (self.slug / "Procfile").write_text("web: probe listen $PORT\n")
        for p in [self.slug, *self.slug.rglob("*")]:
            os.chown(p, UID, UID)
        self.dynos = []

    def close(self):
        for d in self.dynos:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
                try:
                    d.proc.wait(15)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
            d.sink.close()
        for p in [Path(f"/sys/fs/cgroup/{CG_PARENT}"),
                  *Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}")]:
            try:
                p.rmdir()
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def leftovers(d):
    """What is left of dyno d on the host: cgroups, veth, nftables chain."""
    left = []
    # v1 hierarchies are /sys/fs/cgroup/<controller>; a v2 one may be the
    # top or /sys/fs/cgroup/unified
    for p in [Path(f"/sys/fs/cgroup/{CG_PARENT}/{d.id}"),
              *Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}/{d.id}")]:
        if p.exists():
            name = p.parent.parent.name
            left.append(f"cgroup {name if name != 'cgroup' else 'v2'}")
    veth = d.running["veth"]
    if os.path.exists(f"/sys/class/net/{veth}"):
        left.append(f"veth {veth}")
    r = subprocess.run(["nft", "list", "chain", "inet", "dyno", "d-" + veth[3:]],
                       capture_output=True)
    if r.returncode == 0:
        left.append("nft chain")
    r = subprocess.run(["nft", "list", "map", "inet", "dyno", "dynos"], capture_output=True,
                       text=True)
    if veth in r.stdout:
        left.append("nft map element")
    with open("/proc/self/mounts") as f:
        left += [f"mount {ln.split()[1]}" for ln in f if ln.split()[0].startswith("dyno-")]
    r = subprocess.run(["pgrep", "-u", str(UID)], capture_output=True, text=True)
    left += [f"process {p}" for p in r.stdout.split()]
    return left + pool_leftovers(d)


def veth_of(dyno_id):
    return "dy-" + hashlib.sha256(dyno_id.encode()).hexdigest()[:12]


def pool_settle(d, timeout=10):
    """Once d's launcher is gone: waits until its pool's entries (which end
    when their launcher's socket closes) have left their cgroups; returns
    how many cgroups they left for a sweep."""
    prefix = f"{d.launch_id}-pool-"
    end = time.monotonic() + timeout
    while True:
        dirs = [p for p in Path("/sys/fs/cgroup/pids").glob(f"{CG_PARENT}/{prefix}*")
                if p.name != d.id]  # the dyno itself was an entry
        busy = [p for p in dirs if (p / "cgroup.procs").exists()
                and (p / "cgroup.procs").read_text().strip()]
        if not busy or time.monotonic() > end:
            return len(dirs)
        time.sleep(0.05)


def pool_leftovers(d):
    """What the pool of d's launcher left: its entries' cgroups, veths and
    chains (ids <launch id>-pool-<pid>-<n>)."""
    prefix = f"{d.launch_id}-pool-"
    parents = [Path(f"/sys/fs/cgroup/{CG_PARENT}"), *Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}")]
    left = [f"pool cgroup {p}" for parent in parents for p in parent.glob(f"{prefix}*")
            if p.name != d.id]
    ids = [i for i in (f"{prefix}{d.proc.pid % 100000}-{n}" for n in range(1, 17)) if i != d.id]
    left += [f"pool veth {i}" for i in ids if os.path.exists(f"/sys/class/net/{veth_of(i)}")]
    chains = nft("list", "chains", "inet") or ""
    left += [f"pool chain {i}" for i in ids if f"d-{veth_of(i)[3:]} " in chains]
    return left


def tcp(ip, port, timeout=2.0):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return "ok:" + s.recv(100).decode().strip()
    except OSError as e:
        return type(e).__name__


class Server:
    """A TCP service of the host, on all addresses."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.sendall(b"host\n")
            c.close()


# -- scenarios ---------------------------------------------------------------


def sc_report(h):
    host_int80 = subprocess.run([str(PROBE), "int80"], capture_output=True, text=True).stdout
    d = Dyno(h, "probe report; probe touch /tmp/mine; probe ls /tmp/mine", port=5000)
    rep = d.sink.json("report")
    touch = d.sink.json("touch")
    ex = d.finish()
    return {"uid": UID, "report": rep, "host_int80": json.loads(host_int80)["result"], "touch": touch, "exited": ex,
            "leftovers": leftovers(d), "lines": d.sink.lines[:5]}


def sc_private(h):
    a = Dyno(h, "probe touch /tmp/a; probe touch /app/a; sleep 30")
    a.sink.json("touch")
    b = Dyno(h, "probe ls /tmp/a; probe ls /app/a")
    lb = b.sink.json("ls")
    b.sink.pump(1)
    seen = [json.loads(m) for m in b.sink.messages() if m.startswith('{"probe":"ls"')]
    a.stop()
    b.finish()
    return {"seen": seen, "host_slug_a": (h.slug / "a").exists(), "first": lb}


def sc_error(h):
    bad = Dyno(h, "true", extra=["--slug-dir", "/nonexistent"])
    # /proc/1 is a directory the parent can open, but overlayfs refuses it as
    # a lower layer: the child's error has to come back over the socket
    child = Dyno(h, "true", extra=["--slug-dir", "/proc/1"])
    left = []
    for c in CONTROLLERS:
        p = Path(f"/sys/fs/cgroup/{c}/{CG_PARENT}")
        if p.exists():
            left += [x.name for x in p.iterdir() if x.is_dir()]
    return {"bad": bad.error, "child": child.error, "leftover_cgroups": left,
            **ns_leftovers()}


def sc_oom(h):
    d = Dyno(h, "probe hog 1024", memory="32M")
    ex = d.finish(timeout=60)
    return {"exited": ex, "stderr": d.stderr, "events": d.events, "leftovers": leftovers(d),
            "survived": d.sink.json("hog", timeout=0.5)}


def sc_quota(h):
    # over the quota (32 MiB) but under the kernel limit (64 MiB): R14, alive
    d = Dyno(h, "probe hog 44 hold", memory="32M")
    hog = d.sink.json("hog", timeout=15)
    end = time.monotonic() + 5
    line = ""
    while time.monotonic() < end and '"r14"' not in line:
        line = d.proc.stdout.readline()
    ex = d.stop()
    return {"hog": hog, "r14": json.loads(line) if '"r14"' in line else None, "exited": ex,
            "stderr": d.stderr, "leftovers": leftovers(d)}


def sc_oom_bg(h):
    # the OOM killer hits a background process; the main one would live on:
    # the whole dyno is stopped anyway (R15, a crash)
    d = Dyno(h, "probe hog 1024 & sleep 60", memory="32M")
    t0 = time.monotonic()
    ex = d.finish(timeout=60)
    return {"exited": ex, "took": time.monotonic() - t0, "stderr": d.stderr,
            "events": d.events, "leftovers": leftovers(d)}


def sc_forkbomb(h):
    d = Dyno(h, "probe forkbomb", pids=24)
    res = d.sink.json("forkbomb", timeout=20)
    host = subprocess.run(["true"]).returncode
    ex = d.stop()
    return {"forkbomb": res, "host_fork": host, "exited": ex, "leftovers": leftovers(d)}


def sc_network(h):
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")  # the host forwards: the rules must still hold
    other = Server()
    opened = Server()
    a = Dyno(h, "probe listen $PORT", port=5000, extra=["--gateway-port", str(opened.port)])
    a.sink.json("listen")
    from_host = tcp(a.ip, 5000)
    b = Dyno(h, f"probe connect {a.ip} 5000; probe connect 10.213.0.1 {other.port}; "
             f"probe connect 10.213.0.1 {opened.port}; probe connect 127.0.0.1 5000; "
             f"probe listen 5001", port=5001,
             extra=["--gateway-port", str(opened.port)])  # a dyno's ports are its own
    b.sink.json("listen", timeout=15)
    res = [json.loads(m) for m in b.sink.messages() if m.startswith('{"probe":"connect"')]
    from_host_b = tcp(b.ip, 5001)
    ea, eb = a.stop(), b.stop()
    return {"a": a.ip, "b": b.ip, "from_host": from_host, "from_host_b": from_host_b,
            "connects": res, "other_port": other.port, "opened_port": opened.port,
            "exited": [ea, eb], "leftovers": leftovers(a) + leftovers(b)}


OUTSIDE_SERVER = '''
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(8); print("ready", flush=True)
while True:
    c, a = s.accept(); c.sendall(("outside " + a[0] + "\\n").encode()); c.close()
'''


def sc_egress(h):
    # "the outside": another network namespace behind out0, 192.0.2.0/24
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    server = None
    try:
        time.sleep(0.2)
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1", "netns",
            str(holder.pid))
        run("ip", "addr", "add", "192.0.2.1/24", "dev", "out0")
        run("ip", "link", "set", "out0", "up")
        ns = ["nsenter", "-t", str(holder.pid), "-n"]
        run(*ns, "ip", "addr", "add", "192.0.2.2/24", "dev", "out1")
        run(*ns, "ip", "link", "set", "out1", "up")
        run(*ns, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(ns + [sys.executable, "-c", OUTSIDE_SERVER],
                                  stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        a = Dyno(h, "probe connect 192.0.2.2 7000; probe listen 5000", extra=["--egress"])
        b = Dyno(h, "probe connect 192.0.2.2 7000; probe listen 5000")
        ra, rb = a.sink.json("connect"), b.sink.json("connect")
        a.sink.json("listen")
        b.sink.json("listen")
        ea, eb = a.stop(), b.stop()
        return {"egress": ra, "no_egress": rb, "exited": [ea, eb],
                "leftovers": leftovers(a) + leftovers(b)}
    finally:
        if server:
            server.kill()
            server.wait()
        holder.kill()
        holder.wait()


def sc_sigterm(h):
    d = Dyno(h, "probe term 3")
    ready = d.sink.wait_for(lambda m: m.startswith("ready"))
    ex = d.stop()
    d.sink.pump(1)
    terms = [m for m in d.sink.messages() if m.startswith("TERM ")]
    return {"ready": ready, "terms": terms, "exited": ex, "leftovers": leftovers(d)}


def sc_flood_term(h):
    # an app writing without pause: init still forwards SIGTERM, so the
    # stop is a clean exit, not a SIGKILL after the grace
    d = Dyno(h, "echo started; exec yes flooding")
    d.sink.wait_for(lambda m: m == "started")
    time.sleep(0.3)
    t0 = time.monotonic()
    ex = d.stop()
    return {"exited": ex, "took": time.monotonic() - t0, "leftovers": leftovers(d)}


def sc_lines(h):
    # a line over 10000 bytes is split; stderr is relayed too; no newline at
    # the end still makes a line
    d = Dyno(h, "head -c 25000 /dev/zero | tr '\\0' x; echo; echo to-stderr >&2; "
             "printf 'no newline'")
    d.finish()
    d.sink.pump(0.5)
    app = [ln.partition(": ")[2] for ln in d.sink.lines if " app[" in ln]
    return {"lengths": [len(m) for m in app], "last": app[-2:],
            "final": d.sink.lines[-1] if d.sink.lines else ""}


def sc_hardening(h):
    # what root in the dyno (its init) could use against the host: read-only
    # or masked; TLS private keys of the host not there; a pty limit
    d = Dyno(h, "grep -E ' /proc/(sysrq-trigger|irq|bus|fs|acpi|kcore|keys|timer_list) ' "
             "/proc/self/mountinfo; echo etc-ssl: $(ls /etc/ssl); "
             "grep -o 'max=[0-9]*' /proc/self/mountinfo | head -1")
    d.finish()
    d.sink.pump(0.5)
    return {"lines": d.sink.messages()}


def sc_init_env(h):
    # init (uid 0) runs with an empty environment and no fd of the host's
    # file system; the app still gets its config vars; /.init is closed to it
    d = Dyno(h, "echo my=$MY_VAR tun=$GLIBC_TUNABLES; ls /.init; echo ls=$?; sleep 30",
             extra=("--env", "MY_VAR=hello", "--env", "GLIBC_TUNABLES=glibc.malloc.mxfast=0"))
    d.sink.wait_for(lambda m: m.startswith("ls="))
    pid = d.running["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
            fds[fd] = [os.readlink(f"/proc/{pid}/fd/{fd}"), stat.S_ISDIR(st.st_mode)]
        except OSError as e:
            fds[fd] = [str(e), False]
    d.stop()
    return {"environ": environ.decode(errors="replace"), "fds": fds,
            "lines": d.sink.messages(), "leftovers": leftovers(d)}


def sc_sink_dir(h):
    # the sink's directory is bound into the dyno (for its init): one that
    # holds anything but sockets is refused; one under /mnt (where the
    # launcher builds the new root) works
    crowded = h.tmp / "crowded"
    crowded.mkdir()
    (crowded / "secret").write_text("host file\n")
    a = Dyno(h, "echo hi", sink_dir=crowded)
    nested = h.tmp / "nested"
    (nested / "sub").mkdir(parents=True)
    b = Dyno(h, "echo hi", sink_dir=nested)
    open_dir = h.tmp / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    o = Dyno(h, "echo hi", sink_dir=open_dir)
    under = Path(f"/mnt/dyno-test-{os.getpid()}")
    try:
        under.mkdir()
    except OSError as e:
        return {"crowded": a.error, "nested": b.error, "open": o.error,
                "under_skipped": f"/mnt is not writable here: {e}"}
    try:
        c = Dyno(h, "echo under-mnt; grep -c ' /.init/sink' /proc/self/mountinfo", sink_dir=under)
        c.sink.wait_for(lambda m: m == "under-mnt")
        c.finish()
        c.sink.pump(0.3)
        under_lines = c.sink.messages()
        left = leftovers(c)
    finally:
        shutil.rmtree(under, ignore_errors=True)
    return {"crowded": a.error, "nested": b.error, "open": o.error, "under": under_lines,
            "leftovers": left}


def ns_leftovers():
    """Every dy-* veth and d-* chain (inet and arp) of this scenario's own
    network namespace."""
    chains = []
    for table in (("inet", "dyno"), ("arp", "dyno")):
        out = subprocess.run(["nft", "list", "table", *table], capture_output=True,
                             text=True).stdout
        chains += [f"{table[0]} {l.split()[1]}" for l in out.splitlines()
                   if l.strip().startswith("chain d-")]
    return {"veths": [n for n in os.listdir("/sys/class/net") if n.startswith("dy-")],
            "chains": chains}


def sc_setup_timeout(h):
    # an init that never reports: launch_start gives up after the timeout,
    # kills the child and leaves nothing
    t = time.monotonic()
    d = Dyno(h, "true", extra=("--init", str(PROBE), "--setup-timeout", "1s"))
    took = time.monotonic() - t
    # this netns is the scenario's own: any dy-* veth or d-* chain is its
    return {"error": d.error, "took": took, **ns_leftovers(),
            "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}/{d.id}")],
            "processes": subprocess.run(["pgrep", "-f", f"^dyno-init web.1 {UID} "],
                                        capture_output=True, text=True).stdout.split()}


def sc_families(h):
    d = Dyno(h, "probe families")
    rep = d.sink.json("families")
    d.finish()
    return {"families": rep}


def sc_inherited(h):
    # PATH from a config var still has /app/bin first; nothing of the
    # launcher's process settings reaches the app
    d = Dyno(h, "echo path=$PATH; echo core=$(ulimit -c); echo adj=$(cat /proc/self/oom_score_adj)",
             extra=["--env", "PATH=/usr/bin:/bin"])
    d.finish()
    d.sink.pump(0.5)
    return {"lines": d.sink.messages()}


def sc_ipv6_off(h):
    d = Dyno(h, "echo inside=$(cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>&1); sleep 30")
    d.sink.wait_for(lambda m: m.startswith("inside="))
    try:
        host = Path(f"/proc/sys/net/ipv6/conf/{d.running['veth']}/disable_ipv6").read_text().strip()
    except OSError as e:
        host = str(e)
    d.stop()
    return {"inside": [m for m in d.sink.messages() if m.startswith("inside=")], "host": host,
            "ipv6": Path("/proc/sys/net/ipv6").exists()}


def sc_zombies(h):
    # orphans are re-parented to the dyno's init, which must reap them
    d = Dyno(h, "(sleep 0.2 &) ; (sleep 0.2 &) ; sleep 1; probe zombies")
    z = d.sink.json("zombies")
    d.finish()
    return {"zombies": z}


def sc_grace(h):
    # SIGTERM ignored: SIGKILL of the whole cgroup after the grace (2 s here)
    d = Dyno(h, "trap '' TERM; sleep 60 & sleep 60 & echo started; wait")
    d.sink.wait_for(lambda m: m == "started")
    t0 = time.monotonic()
    ex = d.stop()
    return {"exited": ex, "took": time.monotonic() - t0, "leftovers": leftovers(d)}


def sc_sink_gone(h):
    # no sink at all: 8 MB of output must neither block nor kill the dyno
    d = Dyno(h, "probe spam 8000000; echo finished", sink=False, extra=["--log-buffer", "64K"])
    t0 = time.monotonic()
    ex = d.finish(timeout=30)
    took = time.monotonic() - t0
    # the sink comes back: the newest buffered lines and the drop count arrive
    e = Dyno(h, "probe spam 400000; echo MARK; sleep 30", sink=False,
             extra=["--log-buffer", "64K"])
    time.sleep(1.5)
    e.sink.bind()
    mark = e.sink.wait_for(lambda m: m == "MARK", timeout=5)
    drop = next((ln for ln in e.sink.lines if "Error L10" in ln), None)
    # and goes away again: the dyno keeps running
    e.sink.close()
    time.sleep(0.5)
    alive = e.proc.poll() is None
    ee = e.stop()
    return {"exited": ex, "took": took, "mark": mark, "drop": drop, "alive": alive,
            "exited2": ee, "lines": len(e.sink.lines), "datagrams": e.sink.datagrams,
            "leftovers": leftovers(d) + leftovers(e)}


def pool_entries(d):
    """The pool entries of d's launcher waiting now: {id: init pid}."""
    out = {}
    for p in Path("/sys/fs/cgroup/pids").glob(f"{CG_PARENT}/{d.launch_id}-pool-*"):
        procs = (p / "cgroup.procs").read_text().split()
        if procs:
            out[p.name] = int(procs[0])
    return out


def sc_pool_dead_entry(h):
    # an entry that died while waiting is discarded (its cgroup, veth and
    # chains removed) and the start takes a live one
    def kill_newest(d):
        entries = pool_entries(d)
        # the pool hands out its newest entry first: kill that one
        victim = max(entries, key=lambda i: int(i.rsplit("-", 1)[1]))
        os.kill(entries[victim], signal.SIGKILL)
        for _ in range(100):
            if not (Path("/sys/fs/cgroup/pids") / CG_PARENT / victim / "cgroup.procs") \
                    .read_text().strip():
                break
            time.sleep(0.02)
        return {"entries": sorted(entries), "victim": victim}

    # the app cannot enter /.init, where a pooled dyno keeps its slug and
    # scratch mounted
    d = Dyno(h, "echo pooled $(hostname); ls /.init/slug >/dev/null 2>&1; echo init-ls=$?; "
             "sleep 30", extra=("--pool", "2"), before_start=kill_newest)
    victim = d.held["victim"]
    line = d.sink.wait_for(lambda m: m.startswith("pooled "))
    init_ls = d.sink.wait_for(lambda m: m.startswith("init-ls="))
    gone = {"cgroup": not any(Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}/{victim}")),
            "veth": not os.path.exists(f"/sys/class/net/{veth_of(victim)}"),
            "chain": f"d-{veth_of(victim)[3:]} " not in (nft("list", "chains", "inet") or "")}
    ex = d.stop()
    return {"pool": d.pool_event, "held": d.held, "id": d.id, "line": line, "gone": gone,
            "init_ls": init_ls,
            "exited": ex, "leftovers": leftovers(d)}


def sc_pool_burst(h):
    # more starts at once than the pool holds: each entry serves one start,
    # the others are made the usual way; all isolated, nothing left
    r = subprocess.run([str(LAUNCH), "--slug-dir", str(h.slug), "--uid", str(UID), "--name",
                        "web.1", "--id", f"t{os.getpid()}-b", "--cgroup-parent", CG_PARENT,
                        "--pool", "2", "--grace", "1", "--burst", "4", "--", "sleep 600"],
                       capture_output=True, text=True, timeout=120)
    events = [json.loads(x) for x in r.stdout.splitlines()]
    left = []
    for c in CONTROLLERS:
        p = Path(f"/sys/fs/cgroup/{c}/{CG_PARENT}")
        if p.exists():
            left += [x.name for x in p.iterdir() if x.is_dir()]
    return {"rc": r.returncode, "stderr": r.stderr, "events": events,
            "leftover_cgroups": left, **ns_leftovers()}


def sc_crash_sweep(h):
    d = Dyno(h, "sleep 60")
    init_pid = d.running["pid"]
    d.proc.kill()  # the launcher crashes; the dyno must survive it
    d.proc.wait()
    time.sleep(0.3)
    alive = os.path.exists(f"/proc/{init_pid}")
    # a pooled launcher's waiting entries end with it: theirs are the
    # only cgroups the sweep of a live dyno removes
    pool_left = pool_settle(d)
    # the dyno's init, which we started, ends (a sweep leaves live dynos alone)
    before = subprocess.run([str(LAUNCH), "--sweep", "--cgroup-parent", CG_PARENT],
                            capture_output=True, text=True).stdout
    os.kill(init_pid, signal.SIGKILL)
    for _ in range(100):
        if not os.path.exists(f"/proc/{init_pid}"):
            break
        time.sleep(0.05)
    left_before = leftovers(d)
    after = subprocess.run([str(LAUNCH), "--sweep", "--cgroup-parent", CG_PARENT],
                           capture_output=True, text=True).stdout
    return {"alive": alive, "sweep_live": json.loads(before), "pool_left": pool_left,
            "left_before": left_before,
            "sweep": json.loads(after), "leftovers": leftovers(d)}


def sc_adopt(h):
    d = Dyno(h, "probe listen $PORT", port=5000)
    d.sink.json("listen")
    init_pid = d.running["pid"]
    d.proc.kill()  # the launcher crashes; the dyno keeps running
    d.proc.wait()
    # what its pool left is swept, as dynod's start does after adoption
    pool_settle(d)
    subprocess.run([str(LAUNCH), "--sweep", "--cgroup-parent", CG_PARENT], capture_output=True)
    # a new launcher re-adopts it: pid + cgroup, veth and address by its id
    a = subprocess.Popen([str(LAUNCH), "--adopt", str(init_pid), "--id", d.id,
                          "--cgroup-parent", CG_PARENT, "--grace", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    adopted = json.loads(a.stdout.readline() or "null")
    serving = tcp(d.ip, 5000)
    wrong = subprocess.run([str(LAUNCH), "--adopt", str(os.getpid()), "--id", d.id,
                            "--cgroup-parent", CG_PARENT], capture_output=True, text=True)
    # an impostor: a host process named dyno-init, moved into the dyno's
    # cgroups, but not PID 1 of a PID namespace
    imp = subprocess.Popen([sys.executable, "-c",
                            "import ctypes, time; ctypes.CDLL(None).prctl(15, b'dyno-init', 0, 0, 0);"
                            " time.sleep(60)"])
    deadline = time.monotonic() + 10
    while (Path(f"/proc/{imp.pid}/comm").read_text().strip() != "dyno-init"
           and time.monotonic() < deadline):
        time.sleep(0.02)
    for c in CONTROLLERS:
        procs = Path(f"/sys/fs/cgroup/{c}/{CG_PARENT}/{d.id}/cgroup.procs")
        if procs.exists():
            procs.write_text(str(imp.pid))
    impostor = subprocess.run([str(LAUNCH), "--adopt", str(imp.pid), "--id", d.id,
                               "--cgroup-parent", CG_PARENT], capture_output=True, text=True)
    imp.kill()
    imp.wait()
    a.send_signal(signal.SIGTERM)
    out, err = a.communicate(timeout=20)
    exited = json.loads(out.splitlines()[-1]) if out else None
    return {"adopted": adopted, "ip": d.ip, "serving": serving, "exited": exited,
            "err": err, "wrong": wrong.stderr, "impostor": impostor.stderr,
            "impostor_rc": impostor.returncode, "leftovers": leftovers(d)}


# -- cgroup hardening (test_launch_cgroup.py) -----------------------------------


def cgroup_dirs(d):
    """The dyno's cgroup directories on the host: {controller or "v2": path}."""
    dirs = {}
    for c in CONTROLLERS:
        p = Path(f"/sys/fs/cgroup/{c}/{CG_PARENT}/{d.id}")
        if p.is_dir():
            dirs[c] = p
    for p in (Path(f"/sys/fs/cgroup/{CG_PARENT}/{d.id}"),
              Path(f"/sys/fs/cgroup/unified/{CG_PARENT}/{d.id}")):
        if p.is_dir():
            dirs["v2"] = p
    return dirs


CGROUP_FILES = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness",
                "memory.max", "memory.swap.max", "memory.high", "memory.oom.group",
                "pids.max", "cpu.shares", "cpu.weight")


def sc_cgroup_files(h):
    # what the launcher wrote, read from the host while the dyno runs, and
    # the memory files as the dyno sees them (its own cgroup, read-only)
    d = Dyno(h, "for f in /sys/fs/cgroup/memory/memory.limit_in_bytes "
             "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes "
             "/sys/fs/cgroup/memory/memory.swappiness; do "
             "echo inside $f $(cat $f 2>/dev/null || echo absent); done; sleep 30",
             memory="64M", pids=64)
    d.sink.wait_for(lambda m: "memory.swappiness" in m)
    files = {}
    for where, p in cgroup_dirs(d).items():
        for f in CGROUP_FILES:
            try:
                files[f] = (p / f).read_text().strip()
            except OSError:
                pass
    host = {"memsw": Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
            "v1_memory": Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()}
    inside = {m.split()[1].rsplit("/", 1)[1]: m.split()[2]
              for m in d.sink.messages() if m.startswith("inside ")}
    ex = d.stop()
    return {"files": files, "host": host, "inside": inside, "exited": ex,
            "leftovers": leftovers(d)}


def sc_kill_forkloop(h):
    # SIGTERM ignored by every process, each forking more up to the pids
    # limit: after the grace the cgroup is killed (v1: pid by pid through
    # pidfds) and nothing is left
    d = Dyno(h, "trap '' TERM; echo started; while :; do sleep 1000 & done 2>/dev/null",
             pids=64)
    d.sink.wait_for(lambda m: m == "started")
    procs = cgroup_dirs(d)["pids" if "pids" in cgroup_dirs(d) else "v2"] / "cgroup.procs"
    end = time.monotonic() + 10
    most = 0
    while time.monotonic() < end and most < 48:
        most = max(most, len(procs.read_text().split()))
        time.sleep(0.05)
    t0 = time.monotonic()
    ex = d.stop()
    return {"most": most, "exited": ex, "took": time.monotonic() - t0,
            "stderr": d.stderr, "leftovers": leftovers(d)}


# -- network hardening (test_launch_net.py) ----------------------------------


def net_leftovers(d):
    """leftovers(d) and what else a dyno's network leaves: its elements in
    @egress, its ARP chain and element (table arp dyno)."""
    left = leftovers(d)
    veth = d.running["veth"]
    r = subprocess.run(["nft", "list", "chain", "arp", "dyno", "d-" + veth[3:]],
                       capture_output=True)
    if r.returncode == 0:
        left.append("nft arp chain")
    for fam, m in (("arp", "dynos"), ("inet", "egress")):
        r = subprocess.run(["nft", "list", "map", fam, "dyno", m], capture_output=True, text=True)
        if veth in r.stdout:
            left.append(f"nft {fam} {m} element")
    return left


def nft(*args):
    r = subprocess.run(["nft", *args], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def connects(d, n, timeout=20):
    """The first n connect reports of dyno d, {to: result}."""
    end = time.monotonic() + timeout
    while True:
        res = [json.loads(m) for m in d.sink.messages() if m.startswith('{"probe":"connect"')]
        if len(res) >= n or time.monotonic() > end:
            return {c["to"]: c["result"] for c in res}
        d.sink.pump(0.2)


def in_dyno(d, code, *args):
    """Runs python code in dyno d's network namespace, as root: what a dyno
    that got CAP_NET_RAW could do (it has none)."""
    return subprocess.run(["nsenter", "-t", str(d.running["pid"]), "-n", sys.executable, "-c",
                           code, *map(str, args)], capture_output=True, text=True, timeout=20)


OUTSIDE_SERVERS = '''
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 7001))
def udp():
    while True:
        data, a = u.recvfrom(2048)
        print("udp", a[0], data.decode(errors="replace"), flush=True)
threading.Thread(target=udp, daemon=True).start()
def tcp53():
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", 53)); t.listen(8)
    while True:
        t.accept()[0].close()
threading.Thread(target=tcp53, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(64); print("ready", flush=True)
while True:
    c, a = s.accept(); c.sendall(("outside " + a[0] + "\\n").encode()); c.close()
'''


class Outside:
    """Another network namespace behind out0 (192.0.2.0/24, the host is
    192.0.2.1) playing the rest of the world: tcp 7000 and 53, udp 7001 on all
    its addresses; extra addresses of it are routed by the host via
    192.0.2.2."""

    def __init__(self, extra=()):
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1\n")
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "120"])
        self.server = None
        self.udp = []
        time.sleep(0.2)
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1", "netns",
            str(self.holder.pid))
        run("ip", "addr", "add", "192.0.2.1/24", "dev", "out0")
        run("ip", "link", "set", "out0", "up")
        ns = ["nsenter", "-t", str(self.holder.pid), "-n"]
        run(*ns, "ip", "addr", "add", "192.0.2.2/24", "dev", "out1")
        run(*ns, "ip", "link", "set", "out1", "up")
        run(*ns, "ip", "link", "set", "lo", "up")
        for a in extra:
            run(*ns, "ip", "addr", "add", a + "/32", "dev", "out1")
            run("ip", "route", "add", a + "/32", "via", "192.0.2.2")
        self.server = subprocess.Popen(ns + [sys.executable, "-c", OUTSIDE_SERVERS],
                                       stdout=subprocess.PIPE, text=True)
        self.server.stdout.readline()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.server.stdout:
            if line.startswith("udp "):
                self.udp.append(line.rstrip("\n").split(" ", 2)[1:])

    def close(self):
        if self.server:
            self.server.kill()
            self.server.wait()
        self.holder.kill()
        self.holder.wait()


def sc_gateway_ports(h):
    # each dyno reaches the gateway only on its own ports, not on another's
    pa, pb = Server(), Server()
    cmd = (f"probe connect 10.213.0.1 {pa.port}; probe connect 10.213.0.1 {pb.port}; "
           f"sleep 30")
    a = Dyno(h, cmd, extra=["--gateway-port", str(pa.port)])
    b = Dyno(h, cmd, extra=["--gateway-port", str(pb.port)])
    ra, rb = connects(a, 2), connects(b, 2)
    chain_a = nft("list", "chain", "inet", "dyno", "d-" + a.running["veth"][3:])
    a.stop()
    left_a = [x for x in net_leftovers(a) if not x.startswith("process")]  # b's run on
    # b keeps its port after a has gone
    c = Dyno(h, f"probe connect 10.213.0.1 {pb.port}; sleep 30",
             extra=["--gateway-port", str(pb.port)])
    rc = connects(c, 1)
    b.stop()
    c.stop()
    return {"a": ra, "b": rb, "c": rc, "pa": pa.port, "pb": pb.port, "chain_a": chain_a,
            "global_set": nft("list", "set", "inet", "dyno", "ports"),
            "input": nft("list", "chain", "inet", "dyno", "input"),
            "left_a": left_a, "leftovers": net_leftovers(b) + net_leftovers(c)}


OLD_TABLE = """
add table inet dyno
add set inet dyno ports { type inet_service; }
add map inet dyno dynos { type ifname : verdict; }
add map inet dyno egress { type ifname : verdict; }
add chain inet dyno input { type filter hook input priority -10; policy accept; }
add chain inet dyno forward { type filter hook forward priority -10; policy accept; }
add rule inet dyno input iifname "dy-*" iifname vmap @dynos
add rule inet dyno input iifname "dy-*" ct state established,related accept
add rule inet dyno input iifname "dy-*" ip daddr 10.213.0.1 tcp dport @ports accept
add rule inet dyno input iifname "dy-*" drop
add rule inet dyno forward iifname "dy-*" iifname vmap @dynos
add rule inet dyno forward iifname "dy-*" oifname "dy-*" drop
add rule inet dyno forward iifname "dy-*" iifname vmap @egress
add rule inet dyno forward oifname "dy-*" ct state established,related accept
add rule inet dyno forward iifname "dy-*" drop
add rule inet dyno forward oifname "dy-*" drop
add chain inet dyno d-0123456789ab
add rule inet dyno d-0123456789ab ip saddr != 10.213.0.250 drop
add rule inet dyno d-0123456789ab meta nfproto ipv6 drop
add element inet dyno dynos { "dy-0123456789ab" : jump d-0123456789ab }
add element inet dyno ports { %d }
"""


def sc_old_table(h):
    # the table of an older launcher (one global @ports, an old dyno's
    # chain): brought to the new layout; the old dyno keeps its ports
    old, new = Server(), Server()
    subprocess.run(["nft", "-f", "-"], input=OLD_TABLE % old.port, text=True, check=True)
    d = Dyno(h, f"probe connect 10.213.0.1 {old.port}; probe connect 10.213.0.1 {new.port}; "
             f"sleep 30", extra=["--gateway-port", str(new.port)])
    res = connects(d, 2)
    out = {"res": res, "old": old.port, "new": new.port,
           "global_set": nft("list", "set", "inet", "dyno", "ports"),
           "input": nft("list", "chain", "inet", "dyno", "input"),
           "forward": nft("list", "chain", "inet", "dyno", "forward"),
           "old_chain": nft("list", "chain", "inet", "dyno", "d-0123456789ab"),
           "arp": nft("list", "table", "arp", "dyno")}
    d.stop()
    subprocess.run(["nft", "delete element inet dyno dynos { \"dy-0123456789ab\" }; "
                    "delete chain inet dyno d-0123456789ab"], capture_output=True)
    out["leftovers"] = net_leftovers(d)
    return out


# addresses of the outside that a dyno with egress must not reach: link-local
# (cloud metadata), the private ranges, shared space, the dyno subnet itself
DENIED = ["169.254.169.254", "10.99.0.2", "172.16.5.5", "192.168.7.7", "100.64.1.1",
          "10.213.200.9"]


def sc_egress_deny(h):
    out = Outside(extra=DENIED)
    host = Server()  # a service of the host, on all its addresses
    try:
        targets = [("192.0.2.2", 7000)] + [(a, 7000) for a in DENIED] + [
            ("192.0.2.1", host.port), ("10.213.0.1", host.port)]
        cmd = " ".join(f"probe connect {a} {p} &" for a, p in targets) + " wait; sleep 30"
        d = Dyno(h, cmd, extra=["--egress"])
        res = connects(d, len(targets))
        forward = nft("list", "chain", "inet", "dyno", "forward")
        d.stop()
        return {"res": res, "host_port": host.port, "forward": forward,
                "leftovers": net_leftovers(d)}
    finally:
        out.close()


def sc_egress_dns(h):
    # the host's resolver is often a private address (a cloud's): a dyno
    # with egress reaches it on port 53, and on nothing else. The launcher
    # runs in a mount namespace of its own where /etc/resolv.conf names one.
    out = Outside(extra=["10.99.0.2", "172.16.5.5"])
    try:
        conf = h.tmp / "resolv.conf"
        conf.write_text("# test\nnameserver 127.0.0.53\nnameserver 10.99.0.2\n"
                        "nameserver 10.99.0.2\n")
        wrap = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                str(conf)]
        targets = [("10.99.0.2", 53), ("10.99.0.2", 7000), ("172.16.5.5", 53)]
        cmd = " ".join(f"probe connect {a} {p} &" for a, p in targets) + " wait; sleep 30"
        # each launcher process redoes the base chains with its resolvers:
        # the one with the test's resolv.conf starts last
        e = Dyno(h, "probe connect 10.99.0.2 53; sleep 30")  # no egress: no DNS either
        d = Dyno(h, cmd, extra=["--egress"], prefix=wrap)
        res, res_e = connects(d, len(targets)), connects(e, 1)
        forward = nft("list", "chain", "inet", "dyno", "forward")
        d.stop()
        e.stop()
        return {"res": res, "no_egress": res_e, "forward": forward,
                "leftovers": net_leftovers(d) + net_leftovers(e)}
    finally:
        out.close()


SEND_UDP = '''
import socket, struct, sys
src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s.sendto(ip + udp, (dst, 0))
print("sent")
'''


def sc_spoof(h):
    # a dyno's packets with another source address are dropped, forwarded
    # (egress on) or not; its own source passes
    out = Outside()
    try:
        # the app itself (no capabilities) cannot even try
        a = Dyno(h, "probe spoof 10.213.0.77 192.0.2.2 7001; sleep 30", extra=["--egress"])
        b = Dyno(h, "sleep 30")
        app = a.sink.json("spoof")
        sent = [in_dyno(a, SEND_UDP, src, "192.0.2.2", 7001, tag).stdout.strip()
                for src, tag in ((a.ip, "real"), (b.ip, "spoof-dyno"),
                                 ("192.0.2.50", "spoof-outside"), ("10.213.0.1", "spoof-gw"))]
        time.sleep(1)
        a.stop()
        b.stop()
        return {"sent": sent, "udp": out.udp, "a": a.ip, "app": app,
                "leftovers": net_leftovers(a) + net_leftovers(b)}
    finally:
        out.close()


SEND_ARP = '''
import fcntl, socket, struct, sys
sip, tip = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0x0806))
mac = s.getsockname()[4]
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton(sip),
                  b"\\0" * 6, socket.inet_aton(tip))
s.send(b"\\xff" * 6 + mac + struct.pack("!H", 0x0806) + arp)
print("sent")
'''


def sc_arp(h):
    # a dyno asking the host for the gateway in another's name (its
    # address as the ARP sender) would make the host learn that address on
    # its veth: dropped by table arp dyno
    for k in ("all", "default"):  # so the kernel's rp_filter cannot hide it
        Path(f"/proc/sys/net/ipv4/conf/{k}/rp_filter").write_text("0\n")
    a = Dyno(h, "sleep 30")
    b = Dyno(h, "sleep 30")
    veth = b.running["veth"]
    arp_chain = nft("list", "chain", "arp", "dyno", "d-" + veth[3:])
    sent = [in_dyno(b, SEND_ARP, sip, "10.213.0.1").stdout.strip()
            for sip in (a.ip, "10.213.0.77", b.ip)]
    time.sleep(0.5)
    neigh = subprocess.run(["ip", "-4", "neigh", "show", "dev", veth], capture_output=True,
                           text=True).stdout
    learned = [ln.split()[0] for ln in neigh.splitlines() if ln.strip()]
    a.stop()
    b.stop()
    return {"a": a.ip, "b": b.ip, "sent": sent, "learned": learned, "arp_chain": arp_chain,
            "leftovers": net_leftovers(a) + net_leftovers(b)}


def neigh(*ns_args):
    """Every IPv4 neighbour entry of a network namespace (nsenter args, or
    this one): [(dst, dev, lladdr, state)]."""
    cmd = (["nsenter", *ns_args] if ns_args else []) + ["ip", "-4", "-j", "neigh", "show",
                                                          "nud", "all"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [(e.get("dst"), e.get("dev"), e.get("lladdr"), ",".join(e.get("state", [])))
            for e in json.loads(out or "[]")]


def sc_neigh(h):
    # traffic both ways over two dynos' veths: every neighbour entry on
    # either side is the permanent one the launcher made, none resolved
    opened = Server()
    dynos = [Dyno(h, f"probe connect 10.213.0.1 {opened.port}; probe listen $PORT", port=5000,
                  extra=["--gateway-port", str(opened.port)]) for _ in range(2)]
    for d in dynos:
        d.sink.json("listen", timeout=15)
    answers = [tcp(d.ip, 5000) for d in dynos]
    to_gw = [connects(d, 1) for d in dynos]
    host = neigh()
    inside = [neigh("-t", str(d.running["pid"]), "-n") for d in dynos]
    out = {"answers": answers, "to_gw": to_gw, "host": host, "inside": inside,
           "ips": [d.ip for d in dynos], "veths": [d.running["veth"] for d in dynos]}
    for d in dynos:
        d.stop()
    out["leftovers"] = sum((net_leftovers(d) for d in dynos), [])
    return out


def conntrack_of(ip):
    """The conntrack entries of this network namespace that name ip."""
    with open("/proc/net/nf_conntrack") as f:
        return [ln.strip() for ln in f if f"={ip} " in ln]


def sc_conntrack(h):
    # a stopped dyno's conntrack entries go with it; another dyno's stay
    a = Dyno(h, "probe listen $PORT", port=5000)
    b = Dyno(h, "probe listen $PORT", port=5000)
    a.sink.json("listen")
    b.sink.json("listen")
    served = [tcp(a.ip, 5000), tcp(b.ip, 5000)]
    before = {"a": len(conntrack_of(a.ip)), "b": len(conntrack_of(b.ip))}
    a.stop()
    after = {"a": conntrack_of(a.ip), "b": len(conntrack_of(b.ip))}
    b.stop()
    return {"served": served, "before": before, "after": after, "b_end": conntrack_of(b.ip),
            "leftovers": net_leftovers(a) + net_leftovers(b)}


def sc_addr_rr(h):
    # one launcher process, a dyno after another: each gets the next
    # address, not the one its predecessor just gave back
    r = subprocess.run([str(LAUNCH), "--slug-dir", str(h.slug), "--uid", str(UID), "--name",
                        "run.1", "--id", f"t{os.getpid()}-rr", "--cgroup-parent", CG_PARENT,
                        "--repeat", "3", "--", "true"], capture_output=True, text=True,
                       timeout=60)
    bench = json.loads(r.stdout.splitlines()[-1]) if r.stdout else None
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    return {"bench": bench, "stderr": r.stderr, "routes": routes}


def sc_addr_skip(h):
    # addresses with a /32 route of their own are skipped, whoever made it:
    # the first pick (a dump of the routes) and the next (a lookup each).
    # The subnet's last address in use: the first pick wraps around to .2
    taken = ["10.213.255.254", "10.213.0.2", "10.213.0.4"]
    for a in taken:
        subprocess.run(["ip", "route", "add", "blackhole", a + "/32"], check=True)
    try:
        r = subprocess.run([str(LAUNCH), "--slug-dir", str(h.slug), "--uid", str(UID), "--name",
                            "run.1", "--id", f"t{os.getpid()}-skip", "--cgroup-parent",
                            CG_PARENT, "--repeat", "2", "--", "true"], capture_output=True,
                           text=True, timeout=60)
    finally:
        for a in taken:
            subprocess.run(["ip", "route", "del", "blackhole", a + "/32"])
    bench = json.loads(r.stdout.splitlines()[-1]) if r.stdout else None
    return {"bench": bench, "stderr": r.stderr, "taken": taken}


def main():
    name = sys.argv[1]
    h = Harness()
    try:
        res = globals()["sc_" + name](h)
    finally:
        h.close()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
