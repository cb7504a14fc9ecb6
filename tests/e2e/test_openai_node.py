"""Runs openai_client.mjs (the npm `openai` client) against a fresh server; then checks the server idle
(the stream the client broke out of was cancelled)."""

import os
import shutil
import subprocess
import sys

import requests

from longbow_server import LongbowServer, parse_args


def main():
    args = parse_args(sys.argv[1:])
    if not os.path.isfile(os.path.join(args.node_dir, "node_modules", "openai", "package.json")):
        print("the npm openai package is not installed in %s (fixture e2e_npm_install failed?)" % args.node_dir)
        sys.exit(1)
    # ESM resolves bare imports from the script's folder: run a copy beside node_modules.
    script = os.path.join(args.node_dir, "openai_client.mjs")
    shutil.copyfile(os.path.join(args.source_dir, "openai_client.mjs"), script)
    with LongbowServer(args.longbow) as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
        p = subprocess.run([args.node, script, server.url, model], timeout=240)
        if p.returncode != 0:
            server.dump_log()
            sys.exit(1)
        server.wait_idle(timeout=15)
    print("openai npm client: ok")


if __name__ == "__main__":
    main()
