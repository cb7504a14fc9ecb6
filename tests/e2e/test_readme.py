"""The README's curl examples, run as written against the demo model (only the port is changed): each
must answer 200 and finish (the demo model's output is random, so an example without a bound would
run until the context is full).

    test_readme.py --longbow EXE [--source-dir DIR]
"""

import argparse
import os
import re
import shlex
import subprocess

from longbow_server import Checks, LongbowServer


def curl_examples(readme):
    """The shell commands in README code blocks that start with `curl` (continuation lines joined)."""
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        command = ""
        for line in joined.splitlines():
            command = command + "\n" + line if command else line.strip()
            if command.count("'") % 2 == 0:  # a quoted argument may span lines
                if command.startswith("curl "):
                    commands.append(command)
                command = ""
    return commands


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longbow", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    with open(os.path.join(args.source_dir, "..", "..", "README.md")) as f:
        examples = [e for e in curl_examples(f.read()) if "localhost:8000" in e]
    c = Checks()
    c.check(len(examples) >= 3, "the README has curl examples (%d)" % len(examples))
    with LongbowServer(args.longbow) as server:
        for example in examples:
            argv = shlex.split(example.replace("localhost:8000", "127.0.0.1:%d" % server.http_port))
            argv = argv[:1] + ["-w", "\n%{http_code}", "--max-time", "120"] + argv[1:]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=150)
            body, _, code = p.stdout.rpartition("\n")
            finished = '"finish_reason":"' in body.replace(" ", "") or "data: [DONE]" in body
            c.check(p.returncode == 0 and code == "200" and finished,
                    "README example answers and finishes: %s -> rc %d, %s, %s" % (example[:100], p.returncode, code,
                                                                                 body[-200:]))
    c.finish()


if __name__ == "__main__":
    main()
