"""nginx as the upstream for the throughput rows: a fixed OpenAI chat completion in about
20 µs, so the load measures the gateway and not the simulator (which costs ~300 µs of CPU per
request itself, on the same two cores). Debian's `nginx-light`, installed by `make bench`.

BENCH_UPSTREAM=nginx selects it; streams and the scenarios that need directives keep the
simulator.
"""

import json
import shutil
from pathlib import Path

from tools.cli.processes import ManagedProcess, spawn, wait_port

COMPLETION = {
    "id": "chatcmpl-nginx", "object": "chat.completion", "created": 1700000000, "model": "gpt-sim",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A gateway gives one API in front of many."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}


def available() -> bool:
    return shutil.which("nginx") is not None


def start(root: Path, port: int, log_dir: Path) -> ManagedProcess:
    """nginx on 127.0.0.1:`port` answering POST .../chat/completions with COMPLETION."""
    home = root / "nginx"
    home.mkdir(parents=True, exist_ok=True)
    body = json.dumps(COMPLETION).replace("'", "\\'")
    conf = home / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
""")
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = spawn("nginx-upstream", [binary, "-c", str(conf), "-e", str(home / "error.log")], {}, log_dir)
    wait_port("127.0.0.1", port, 10, proc.popen)
    return proc
