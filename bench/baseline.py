#!/usr/bin/env python3
"""The plain script a user would write instead of dify-batch (issue 14's side-by-side baseline).

For every file under INBOX: upload it (POST /files/upload), run the workflow with it (POST /workflows/run,
streaming or blocking), write Dify's outputs to OUTBOX/<relative path>.json. N worker threads, one keep-alive
HTTP connection per thread (http.client), standard library only. What it does NOT do, unlike dify-batch: no
ledger (a crash or Ctrl-C loses track of what ran; rerunning pays again), no retries/backoff, no fsync of the
outputs, no recovery of a run whose response was lost, no usage accounting beyond what the stream says.

Usage: baseline.py --base-url http://127.0.0.1:PORT/v1 --key app-... --inbox IN --outbox OUT
                   [--concurrency 8] [--mode streaming|blocking] [--user baseline]
Prints one line: "files=N ok=N failed=N wall_s=S" (stderr gets the first errors).
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", default=os.environ.get("DIFY_API_KEY"))
    parser.add_argument("--inbox", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", choices=["streaming", "blocking"], default="streaming")
    parser.add_argument("--user", default="baseline")
    parser.add_argument("--input", default="document", help="the workflow's file input variable")
    args = parser.parse_args()

    url = urlsplit(args.base_url)
    prefix = url.path.rstrip("/")
    local = threading.local()

    def connection():
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=600)
        return local.conn

    def request(method, path, body, headers):
        headers = dict(headers, Authorization="Bearer " + args.key)
        for attempt in range(2):  # one reconnect if the kept-alive connection was closed
            conn = connection()
            try:
                conn.request(method, prefix + path, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                local.conn = None
                if attempt:
                    raise

    def process(relative):
        with open(os.path.join(args.inbox, relative), "rb") as f:
            content = f.read()
        boundary = uuid.uuid4().hex
        name = os.path.basename(relative)
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="user"\r\n\r\n{args.user}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f'Content-Type: text/plain\r\n\r\n').encode() + content + f'\r\n--{boundary}--\r\n'.encode()
        response = request("POST", "/files/upload", body,
                           {"Content-Type": "multipart/form-data; boundary=" + boundary})
        uploaded = json.loads(response.read())
        if response.status >= 300:
            raise RuntimeError(f"upload {relative}: HTTP {response.status} {uploaded}")
        run = {"inputs": {args.input: {"type": "document", "transfer_method": "local_file",
                                       "upload_file_id": uploaded["id"]}},
               "response_mode": args.mode, "user": args.user}
        response = request("POST", "/workflows/run", json.dumps(run).encode(), {"Content-Type": "application/json"})
        if response.status >= 300:
            raise RuntimeError(f"run {relative}: HTTP {response.status} {response.read()[:200]!r}")
        if args.mode == "blocking":
            result = json.loads(response.read())["data"]
        else:
            result = None
            for line in response:  # SSE: one JSON event per `data:` line
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    if event.get("event") == "workflow_finished":
                        result = event["data"]
                    elif event.get("event") == "error":
                        raise RuntimeError(f"run {relative}: {event}")
            if result is None:
                raise RuntimeError(f"run {relative}: stream ended without workflow_finished")
        target = os.path.join(args.outbox, relative + ".json")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            json.dump({"source": relative, "status": result.get("status"), "outputs": result.get("outputs"),
                       "workflow_run_id": result.get("id"), "total_tokens": result.get("total_tokens")}, f)
        return result.get("status") == "succeeded"

    files = sorted(os.path.relpath(os.path.join(root, name), args.inbox)
                   for root, _, names in os.walk(args.inbox) for name in names)
    start = time.monotonic()
    ok = failed = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [pool.submit(process, relative) for relative in files]
        for future in futures:
            try:
                if future.result():
                    ok += 1
                else:
                    failed += 1
            except Exception as error:  # noqa: BLE001 — a script reports and moves on
                failed += 1
                if failed <= 3:
                    print(error, file=sys.stderr)
    print(f"files={len(files)} ok={ok} failed={failed} wall_s={time.monotonic() - start:.2f}")


if __name__ == "__main__":
    main()
