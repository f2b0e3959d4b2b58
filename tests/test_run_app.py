"""`./run.sh app`, exactly as README says, listens on loopback only; `--share` listens on every
interface and prints one line saying so. Nothing is sent anywhere but loopback: the bound
addresses are read from /proc, and the --share server runs in a network namespace of its own
whose only interface is an (unplugged) loopback, so no other machine could reach it."""
import ipaddress
import os
import subprocess
import time
import urllib.request

import pytest
from browser import ROOT, free_port


def listening(pid: int) -> set:
    """(address, port) of every TCP socket process `pid` listens on, read in its own namespace."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    bound = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A: LISTEN
                    continue
                host, port = local.split(":")
                raw = bytes.fromhex(host)  # each 32-bit word is in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                bound.add((ipaddress.ip_address(raw), int(port, 16)))
    return bound


def start(command, port, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_HEADLESS="true",
               STREAMLIT_SERVER_FILE_WATCHER_TYPE="none", GPT2VIZ_CACHE=str(tmp_path / "cache"))
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_listening(proc, port, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        bound = {address for address, p in listening(proc.pid) if p == port}
        if bound:
            return bound
        time.sleep(0.3)
    raise AssertionError(f"no server on port {port}: {proc.communicate(timeout=10)[0][-2000:]}")


def stop(proc) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def test_readme_command_listens_on_loopback_only(tmp_path):
    port = free_port()
    proc = start(["./run.sh", "app"], port, tmp_path)  # README's first command, as typed
    try:
        bound = wait_listening(proc, port)
        assert bound and all(address.is_loopback for address in bound), bound
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30) as r:
            assert r.read() == b"ok"
    finally:
        output = stop(proc)
    assert "Shared" not in output and "Network URL" not in output


def private_network():
    """`unshare` into a new network namespace (as root, or through a user namespace)."""
    for prefix in (["unshare", "--net"], ["unshare", "--map-root-user", "--net"]):
        try:
            if subprocess.run(prefix + ["true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


@pytest.mark.skipif(private_network() is None, reason="no network namespaces here (unshare)")
def test_share_switch_listens_everywhere_and_says_so(tmp_path):
    port = free_port()
    proc = start(private_network() + ["./run.sh", "app", "--share"], port, tmp_path)
    try:
        bound = wait_listening(proc, port)
        assert bound == {ipaddress.ip_address("0.0.0.0")}
    finally:
        output = stop(proc)
    notices = [line for line in output.splitlines() if line.startswith("Shared:")]
    assert notices == [f"Shared: anyone who can reach this machine on port {port} (every network "
                       f"interface) can use the dashboard; there is no login (README: Local and "
                       f"shared mode)."]
