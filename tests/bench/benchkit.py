"""What the benchmarks that run a real dynod share (tests/bench/scale.sh,
deploy.sh): finding and sweeping what it may leave behind under its
cgroup parent."""
import os
import re
import signal
import socket
import subprocess
import time

CONTROLLERS = ("memory", "pids", "cpu")


def cgroups(parent):
    """The cgroups left under parent, as "controller/name"."""
    left = []
    for c in CONTROLLERS:
        p = os.path.join("/sys/fs/cgroup", c, parent)
        if os.path.isdir(p):
            left += [f"{c}/{d}" for d in os.listdir(p) if os.path.isdir(os.path.join(p, d))]
    p = os.path.join("/sys/fs/cgroup", parent)  # a unified (v2) host
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers") and os.path.isdir(p):
        left += [d for d in os.listdir(p) if os.path.isdir(os.path.join(p, d))]
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


def start_dynod(exe, conf, sock, log_path, env):
    """Starts dynod with conf, its output appended to log_path; returns
    the process once it accepts on sock (20 s at the most)."""
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([exe, "--config", conf], stdout=logf, stderr=logf, env=env)
    end = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dynod exited {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            return proc
        except OSError:
            if time.monotonic() > end:
                proc.kill()
                proc.wait()
                raise RuntimeError("dynod did not accept on its socket")
            time.sleep(0.05)


def stop_dynod(proc, parent, pids):
    """Stops dynod (SIGTERM, SIGKILL after 30 s), then says what it left:
    cgroups under parent, veths, processes of pids still alive; sweeps
    them. Returns {"cgroups", "veths", "processes"}."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left = {"cgroups": cgroups(parent),
            "veths": re.findall(r"dy-[0-9a-f]{12}", links),
            "processes": [p for p in pids if alive(p)]}
    sweep(parent)
    for p in left["processes"]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left
