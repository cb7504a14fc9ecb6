#!/usr/bin/python3
"""Checks the configuration of the built image (the JSON of `buildah inspect --type image`).

Prints one "ok: ..." line per check on stderr, and on success the HEALTHCHECK command (the words
after "CMD") on stdout for the caller to run. Exits non-zero at the first failed check.
"""
import json
import sys


def check(ok, what):
    if not ok:
        sys.exit("FAIL: image config: " + what)
    print("    ok: " + what, file=sys.stderr)


def main():
    config = json.load(open(sys.argv[1]))["Docker"]["config"]

    user = config.get("User", "")
    uid = user.split(":")[0]
    check(user != "" and uid not in ("0", "root"), "non-root user (%r)" % user)
    check(uid.isdigit(), "numeric user, which Kubernetes' runAsNonRoot can verify (%r)" % user)

    ports = sorted((config.get("ExposedPorts") or {}).keys())
    check(ports == ["8000/tcp", "8001/tcp"], "exposes 8000 and 8001 (%s)" % ports)
    check("/models" in (config.get("Volumes") or {}), "/models volume")

    entrypoint = config.get("Entrypoint") or []
    check(entrypoint == ["/opt/longbow/bin/longbow-entrypoint"], "exec-form entrypoint %s" % entrypoint)

    health = config.get("Healthcheck") or {}
    test = health.get("Test") or []
    check(test[:1] == ["CMD"] and "longbow-healthcheck" in " ".join(test), "HEALTHCHECK %s" % test)
    start_period_s = health.get("StartPeriod", 0) / 1e9
    check(start_period_s >= 300, "HEALTHCHECK start period %.0f s (weight loading)" % start_period_s)

    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    check(env.get("LONGBOW_HOST") == "0.0.0.0", "LONGBOW_HOST=0.0.0.0 (reachable through -p)")

    print(" ".join(test[1:]))


if __name__ == "__main__":
    main()
