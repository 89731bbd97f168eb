"""Benchmark: the CPU of schoolgate's addon chain per request, in-process, without mitmproxy's
own per-request work: every addon of proxy_addons.main (of whichever checkout is first on
PYTHONPATH) runs its synchronous request hooks on tflow HTTPS requests. Not a test.

    PYTHONPATH=. .venv/bin/python bench/bench_chain.py [REQUESTS]

The checkout measured is the one on PYTHONPATH (run from its folder), so one copy of this script
compares two commits: farm-bench --vs "sh -c 'cd OLD && PYTHONPATH=OLD exec $PWD/.venv/bin/python
$PWD/bench/bench_chain.py 3000'" -- sh -c 'PYTHONPATH=. exec .venv/bin/python bench/bench_chain.py
3000' (docs/benchmarks.md, the gateway-wing redesign).
"""

import inspect
import pathlib
import sys
import tempfile
import time

from mitmproxy.test import taddons, tflow, tutils

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from schoolgate.proxy_addons.main import addons
from tests.support.gateway import write_policy

HOSTS = [
    "learning.test",
    "www.bbc.co.uk",
    "x.com",
    "www.facebook.com",
    "cdn.example.org",
    "www.google.com",
    "news.example.com",
    "www.tiktok.com",
]
HOOKS = ("requestheaders", "request", "responseheaders", "response")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
folder = pathlib.Path(tempfile.mkdtemp())
write_policy(folder / "policy.yaml", in_break=False)
with taddons.context(*addons) as tctx:
    tctx.options.update(
        schoolgate_policy=str(folder / "policy.yaml"),
        schoolgate_secret_file=str(folder / "secret"),
        schoolgate_metrics_port=0,
    )
    chain = [
        [
            getattr(a, h)
            for a in addons
            if hasattr(a, h) and not inspect.iscoroutinefunction(getattr(a, h))
        ]
        for h in HOOKS
    ]
    flows = []
    for i in range(n):
        host = HOSTS[i % len(HOSTS)]
        f = tflow.tflow(
            req=tutils.treq(host=host, port=443, scheme=b"https", authority=b"", path=b"/page?q=1"),
            resp=False,
        )
        f.request.headers["Host"] = host
        f.client_conn.sni = host
        flows.append(f)
    resp = tutils.tresp()
    start = time.process_time()
    for f in flows:
        for hook in chain[0]:
            hook(f)
        for hook in chain[1]:
            hook(f)
        if f.response is None:
            f.response = resp.copy()
        for hook in chain[2]:
            hook(f)
        for hook in chain[3]:
            hook(f)
    took = time.process_time() - start
print(f"{took / n * 1e6:.1f} us CPU per request through {len(addons)} addons")
