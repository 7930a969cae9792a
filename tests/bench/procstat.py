"""What the benchmark scripts share about the daemon they run: a run folder
made from what `intake_bench prepare` made, a free loopback port to give
it, and its CPU time and resident memory from /proc."""
import os
import shutil
import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def prepare_run(base, name, state=True):
    """BASE/NAME, new: a spool folder, the token, a copy of BASE's state
    (unless `state` is false: the daemon starts on an empty one) and BASE's
    tactd.toml with the push endpoint on a free port. Returns (run, port)."""
    run = os.path.join(base, name)
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(os.path.join(run, "spool"))
    if state:
        shutil.copy(os.path.join(base, "state.db"), run)
    shutil.copy(os.path.join(base, "token"), run)
    port = free_port()
    with open(os.path.join(base, "tactd.toml")) as f:
        config = f.read().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    with open(os.path.join(run, "tactd.toml"), "w") as f:
        f.write(config)
    return run, port
