"""What the benchmarks that run a real dynod share (tests/bench/scale.sh,
deploy.sh): finding and sweeping what it may leave behind under its
cgroup parent."""
import os
import signal
import time

CONTROLLERS = ("memory", "pids", "cpu")


def cgroups(parent):
    """The cgroups left under parent, as "controller/name"."""
    left = []
    for c in CONTROLLERS:
        p = os.path.join("/sys/fs/cgroup", c, parent)
        if os.path.isdir(p):
            left += [f"{c}/{d}" for d in os.listdir(p) if os.path.isdir(os.path.join(p, d))]
    return left


def sweep(parent):
    """Kills every process left in parent's cgroups, removes them and it."""
    for c in CONTROLLERS:
        p = os.path.join("/sys/fs/cgroup", c, parent)
        if not os.path.isdir(p):
            continue
        for d in os.listdir(p):
            procs = os.path.join(p, d, "cgroup.procs")
            if os.path.exists(procs):
                for pid in open(procs).read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        time.sleep(0.3)
        for d in os.listdir(p):
            try:
                os.rmdir(os.path.join(p, d))
            except OSError:
                pass
        try:
            os.rmdir(p)
        except OSError:
            pass


def alive(pid):
    """True while pid runs (a zombie does not)."""
    try:
        return "State:\tZ" not in open(f"/proc/{pid}/status").read()
    except OSError:
        return False
