"""OpenAI API contract of `vortex serve`, checked with the official openai client and raw HTTP.

Run by server_process_test against a server started with --api-key test-key, --max-batch 4,
--max-queue 6 and --max-body-bytes 65536 on a tiny synthetic model. Exits non-zero on failure.
"""
import argparse
import concurrent.futures
import http.client
import json
import socket
import sys
import time
import urllib.parse

import openai

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


def raw(base, method, path, body=None, headers=None):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else body.encode()
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    conn.close()
    return out


def metric(base, name):
    _, _, body = raw(base, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def cut_at_stop(text, stops):
    """Reference: generation stops at the first prefix containing a stop string."""
    for n in range(1, len(text) + 1):
        prefix = text[:n]
        hits = [prefix.find(s) for s in stops if s in prefix]
        if hits:
            return prefix[: min(hits)]
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    args = ap.parse_args()
    base = args.base_url
    client = openai.OpenAI(base_url=base + "/v1", api_key=args.api_key, max_retries=0)
    auth = {"Authorization": "Bearer " + args.api_key, "Content-Type": "application/json"}

    # Models.
    models = client.models.list().data
    check(len(models) == 1, "one model listed")
    model = models[0].id

    # Completions: usage, determinism, finish reason.
    prompt = "The quick brown fox"
    a = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0)
    b = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0)
    text = a.choices[0].text
    check(a.object == "text_completion", "completion object")
    check(text == b.choices[0].text, "greedy completions are deterministic")
    check(a.usage.prompt_tokens == len(prompt.encode()), "prompt_tokens counts the byte tokens")
    check(a.usage.completion_tokens == 12, "completion_tokens == max_tokens")
    check(a.usage.total_tokens == a.usage.prompt_tokens + 12, "total_tokens")
    check(a.choices[0].finish_reason == "length", "finish_reason length")

    # Streaming equals non-streaming.
    pieces, finish = [], None
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=12,
                                           temperature=0, stream=True):
        for ch in chunk.choices:
            pieces.append(ch.text)
            finish = ch.finish_reason or finish
    check("".join(pieces) == text, "streamed completion equals the non-streamed one")
    check(finish == "length", "streamed finish_reason")

    # Streaming usage (stream_options.include_usage).
    usage = None
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=5,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
    check(usage is not None and usage.completion_tokens == 5, "streamed usage chunk")

    # Chat, streaming and not.
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    c = client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                       temperature=0)
    check(c.object == "chat.completion", "chat object")
    check(c.choices[0].message.role == "assistant", "assistant role")
    check(c.usage.completion_tokens == 8, "chat usage")
    streamed, roles = [], []
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                                temperature=0, stream=True):
        for ch in chunk.choices:
            if ch.delta.role:
                roles.append(ch.delta.role)
            if ch.delta.content:
                streamed.append(ch.delta.content)
    check("".join(streamed) == c.choices[0].message.content, "streamed chat equals non-streamed")
    check(roles == ["assistant"], "role sent once")

    # n > 1: greedy choices agree; seeded sampling is reproducible and varies across choices.
    g = client.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0, n=3)
    check(sorted(ch.index for ch in g.choices) == [0, 1, 2], "n=3 indices")
    check(len({ch.text for ch in g.choices}) == 1, "greedy n=3 choices agree")
    check(g.usage.completion_tokens == 18, "n=3 usage counts every choice")
    s1 = client.completions.create(model=model, prompt=prompt, max_tokens=16, temperature=1.0,
                                   n=3, seed=42)
    s2 = client.completions.create(model=model, prompt=prompt, max_tokens=16, temperature=1.0,
                                   n=3, seed=42)
    check([ch.text for ch in s1.choices] == [ch.text for ch in s2.choices],
          "seeded sampling is reproducible")
    check(len({ch.text for ch in s1.choices}) > 1, "seeded choices differ from each other")

    # Stop strings: the greedy text cut at the first completed stop string.
    long_text = client.completions.create(model=model, prompt=prompt, max_tokens=24,
                                          temperature=0).choices[0].text
    candidates = [ch for ch in long_text[2:] if ch.isascii() and ch.isprintable()]
    stop = candidates[0] if candidates else long_text[2:3]
    stopped = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0,
                                        stop=[stop, "\u0000never"])
    check(stopped.choices[0].text == cut_at_stop(long_text, [stop]),
          f"stop {stop!r}: {stopped.choices[0].text!r} vs {long_text!r}")
    check(stopped.choices[0].finish_reason == "stop", "finish_reason stop")
    check(stopped.usage.completion_tokens < 24, "stop ends generation early")
    streamed = "".join(ch.text for chunk in client.completions.create(
        model=model, prompt=prompt, max_tokens=24, temperature=0, stop=[stop], stream=True)
        for ch in chunk.choices)
    check(streamed == stopped.choices[0].text, "streamed stop string")

    # Logprobs.
    lp = client.completions.create(model=model, prompt=prompt, max_tokens=5, temperature=0,
                                   logprobs=2).choices[0].logprobs
    check(lp is not None and len(lp.tokens) == 5, "logprobs tokens")
    check(all(x <= 0.0 for x in lp.token_logprobs), "logprobs are <= 0")
    check(all(len(t) <= 2 for t in lp.top_logprobs), "top_logprobs size")
    check(all(abs(max(t.values()) - x) < 1e-4 for t, x in zip(lp.top_logprobs, lp.token_logprobs)),
          "greedy token is the most likely one")

    # Vortex options: flows from the operator's set, per-request budgets, validation.
    listed = client.models.list().data[0].model_extra.get("vortex", {})
    check(set(listed.get("flows", [])) >= {"dense", "block_topk", "quest", "running_avg"},
          f"loaded flows listed: {listed}")
    v = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0,
                                  extra_body={"vortex": {"flow": "dense"}})
    check(v.choices[0].text == text[: len(v.choices[0].text)], "explicit dense flow")
    long_prompt = " ".join(f"item{i}" for i in range(120))  # ~40 pages of 16 tokens
    before_sel = metric(base, "vortex_selected_pages_total")
    for flow in ["block_topk", "quest", "running_avg"]:
        r = client.completions.create(model=model, prompt=long_prompt, max_tokens=6,
                                      temperature=0,
                                      extra_body={"vortex": {"flow": flow, "topk_val": 2,
                                                             "bos": 1, "eos": 1}})
        check(r.usage.completion_tokens == 6, f"sparse flow {flow} generates")
    check(metric(base, "vortex_selected_pages_total") > before_sel, "sparse rows were selected")
    check(metric(base, "vortex_selected_page_fraction") < 1.0, "selected-page fraction < 1")
    expect_budget_errors = [{"flow": "block_topk", "layers_skip": [5]},  # tiny model: 2 layers
                            {"flow": "block_topk", "topk_ratio": 1.5},
                            {"flow": "block_topk", "topk_val": -1},
                            {"flow": "dense", "topk_val": 3},
                            {"flow": "h2o_pages"},  # built in, but not loaded by the operator
                            {"flowz": "quest"}]
    for vx in expect_budget_errors:
        st, _, out = raw(base, "POST", "/v1/completions",
                         json.dumps({"prompt": "x", "max_tokens": 1, "vortex": vx}), auth)
        check(st == 400, f"vortex {vx}: status {st} {out[:120]!r}")

    # Errors through the client.
    def expect_error(exc, **kw):  # noqa: E306
        try:
            client.completions.create(model=model, **kw)
        except exc:
            return True
        except Exception as e:  # noqa: BLE001
            check(False, f"{kw}: expected {exc.__name__}, got {type(e).__name__}: {e}")
            return False
        check(False, f"{kw}: expected {exc.__name__}, got success")
        return False

    expect_error(openai.BadRequestError, prompt="x", extra_body={"vortex": {"flow": "nope"}})
    expect_error(openai.BadRequestError, prompt="x" * 5000)  # longer than the 4096 context
    expect_error(openai.BadRequestError, prompt="x", max_tokens=0)
    expect_error(openai.BadRequestError, prompt="x", max_tokens=100000)
    try:
        client.completions.create(model="no-such-model", prompt="x")
        check(False, "unknown model accepted")
    except openai.NotFoundError:
        pass
    bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        check(False, "wrong key accepted")
    except openai.AuthenticationError:
        pass

    # Errors over raw HTTP: status, JSON error object.
    for body, status in [("{bad json", 400), ('{"prompt": 3}', 400),
                         ('{"prompt": "x", "temperature": "warm"}', 400),
                         ('{"prompt": "x", "n": 1000}', 400),
                         ("x" * 100000, 413)]:
        st, _, out = raw(base, "POST", "/v1/completions", body, auth)
        check(st == status, f"raw {body[:30]!r}: status {st}, want {status}")
        try:
            err = json.loads(out)["error"]
            check(isinstance(err["message"], str) and err["type"], "error object fields")
        except (ValueError, KeyError):
            check(False, f"raw {body[:30]!r}: no JSON error body: {out[:100]!r}")
    st, _, _ = raw(base, "POST", "/v1/completions", '{"prompt":"x"}',
                   {"Content-Type": "application/json"})
    check(st == 401, "no key: 401")
    st, _, out = raw(base, "GET", "/health")
    check(st == 200, "health")
    st, hdr, out = raw(base, "POST", "/v1/chat/completions",
                       json.dumps({"messages": [{"role": "user", "content": "hey"}],
                                   "max_tokens": 3, "stream": True}), auth)
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/event-stream"), "SSE type")
    check(out.endswith(b"data: [DONE]\n\n"), "SSE ends with [DONE]")
    _, _, mtext = raw(base, "GET", "/metrics")
    for name in ["vortex_requests_running", "vortex_requests_waiting", "vortex_kv_pages_used",
                 "vortex_kv_pages_free", "vortex_prefix_cache_hit_rate",
                 "vortex_generation_tokens_per_second", "vortex_time_to_first_token_seconds_bucket",
                 "vortex_inter_token_latency_seconds_bucket", "vortex_selected_page_fraction"]:
        check(name in mtext.decode(), f"metric {name}")
    check(metric(base, "vortex_prefix_cache_hit_rate") > 0, "repeated prompts hit the cache")

    # A client that disconnects mid-stream gets its request cancelled.
    before = metric(base, 'vortex_requests_finished_total{reason="cancelled"}')
    u = urllib.parse.urlparse(base)
    sock = socket.create_connection((u.hostname, u.port))
    body = json.dumps({"prompt": "abc", "max_tokens": 3000, "stream": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 args.api_key.encode() + b"\r\nContent-Type: application/json\r\n" +
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    check(b"200 OK" in sock.recv(4096), "stream started")
    sock.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if metric(base, 'vortex_requests_finished_total{reason="cancelled"}') > before:
            break
        time.sleep(0.05)
    check(metric(base, 'vortex_requests_finished_total{reason="cancelled"}') > before,
          "disconnect cancels the request")

    # A long non-streaming request (keep-alive spaces precede the JSON) parses in the client.
    t0 = time.time()
    longer = client.completions.create(model=model, prompt="long", max_tokens=4000, temperature=0,
                                       extra_body={"ignore_eos": True})
    check(longer.usage.completion_tokens == 4000, "long non-streaming request")
    print(f"4000-token non-streaming request took {time.time() - t0:.1f}s")

    # Garbage on the wire never takes the server down.
    import random
    rng = random.Random(3)
    for i in range(20):
        try:
            g = socket.create_connection((u.hostname, u.port), timeout=5)
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
            if i % 2:
                junk = b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n" + junk
            g.sendall(junk)
            g.shutdown(socket.SHUT_WR)
            g.settimeout(5)
            try:
                g.recv(4096)
            except OSError:
                pass
            g.close()
        except OSError:
            pass
    check(raw(base, "GET", "/health")[0] == 200, "healthy after garbage input")

    # Overload: more concurrent requests than --max-batch + --max-queue get 429 + Retry-After.
    def one(_):
        return raw(base, "POST", "/v1/completions",
                   json.dumps({"prompt": "load", "max_tokens": 400, "temperature": 0}), auth)
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(24)))
    statuses = [r[0] for r in results]
    check(429 in statuses and 200 in statuses, f"overload gives 429s and 200s: {statuses}")
    check(all(r[1].get("Retry-After") == "1" for r in results if r[0] == 429), "Retry-After")

    # Nothing leaked: idle server holds only prefix-cache pages.
    deadline = time.time() + 10
    while time.time() < deadline and metric(base, "vortex_requests_running") > 0:
        time.sleep(0.05)
    check(metric(base, "vortex_requests_running") == 0, "idle after the tests")
    check(metric(base, "vortex_kv_pages_used") == metric(base, "vortex_prefix_cache_pages"),
          "no page leaked")

    if FAILURES:
        print(f"{len(FAILURES)} contract check(s) failed", file=sys.stderr)
        return 1
    print("openai contract: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
