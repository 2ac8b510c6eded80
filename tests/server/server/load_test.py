"""Bounded load test of `vortex serve`: N concurrent streaming clients x M requests each (openai
client, asyncio). Every streamed output must equal the same request's output when run alone, and
afterwards the server must hold no page besides its prefix cache (/metrics). Exits non-zero on
failure.
"""
import argparse
import asyncio
import random
import sys
import time
import urllib.request

import openai


def metrics(base):
    out = {}
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
    return out


def make_requests(count, seed):
    """Distinct requests; a third share a long prefix (prefix cache), some sample with a seed."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "vortex", "page", "cache", "token"]
    shared = " ".join(rng.choice(words) for _ in range(12))
    reqs = []
    for i in range(count):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        prompt = (shared + " " + body) if i % 3 == 0 else body
        req = {"prompt": prompt, "max_tokens": rng.randint(4, 24), "temperature": 0.0}
        if i % 4 == 1:
            req.update(temperature=0.9, top_p=0.95, seed=1000 + i)
        reqs.append(req)
    return reqs


async def run_one(client, model, req):
    text, finish = [], None
    stream = await client.completions.create(model=model, stream=True, **req)
    async for chunk in stream:
        for ch in chunk.choices:
            text.append(ch.text)
            finish = ch.finish_reason or finish
    return "".join(text), finish


async def main_async(args):
    base = args.base_url
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0,
                                timeout=300.0)
    model = (await client.models.list()).data[0].id
    distinct = make_requests(48, seed=7)

    t0 = time.time()
    solo = []
    for req in distinct:  # one at a time: the reference outputs
        solo.append(await run_one(client, model, req))
    t_solo = time.time() - t0

    rng = random.Random(11)
    plans = [[rng.randrange(len(distinct)) for _ in range(args.requests_per_client)]
             for _ in range(args.clients)]
    before = metrics(base)

    async def client_task(plan):
        got = []
        for idx in plan:
            got.append((idx, await run_one(client, model, distinct[idx])))
        return got

    t0 = time.time()
    results = await asyncio.gather(*(client_task(p) for p in plans))
    t_load = time.time() - t0
    await client.close()

    failures = 0
    total = 0
    for got in results:
        for idx, out in got:
            total += 1
            if out != solo[idx]:
                failures += 1
                print(f"FAIL request {idx}: {out!r} != solo {solo[idx]!r}", file=sys.stderr)
    after = metrics(base)
    for _ in range(100):  # the last finish events may trail the final chunks slightly
        if after["vortex_requests_running"] == 0 and after["vortex_requests_waiting"] == 0:
            break
        time.sleep(0.05)
        after = metrics(base)
    preempted = after["vortex_preemptions_total"] - before["vortex_preemptions_total"]
    print(f"load test: {total} streamed requests from {args.clients} clients in {t_load:.1f}s "
          f"(solo pass {t_solo:.1f}s), {failures} mismatches, {preempted:.0f} preemptions, "
          f"prefix hit rate {after['vortex_prefix_cache_hit_rate']:.2f}")
    ok = failures == 0 and total == args.clients * args.requests_per_client
    if after["vortex_requests_running"] != 0 or after["vortex_requests_waiting"] != 0:
        print("FAIL: requests still running after the load", file=sys.stderr)
        ok = False
    if after["vortex_kv_pages_used"] != after["vortex_prefix_cache_pages"]:
        print(f"FAIL: page leak: {after['vortex_kv_pages_used']} used, "
              f"{after['vortex_prefix_cache_pages']} in the prefix cache", file=sys.stderr)
        ok = False
    if args.expect_preemption and preempted == 0:
        print("FAIL: the pool was meant to force preemption", file=sys.stderr)
        ok = False
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests-per-client", type=int, default=3)
    ap.add_argument("--expect-preemption", action="store_true")
    args = ap.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
