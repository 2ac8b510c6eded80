"""One chat request to `vortex serve` running the default model (SmolLM2-135M-Instruct) through the
official openai client, dense and with sparse attention; the answer must name Paris."""
import argparse
import sys

import openai


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url + "/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    ok = True
    for extra in [{}, {"vortex": {"flow": "block_topk", "topk_val": 4}}]:
        r = client.chat.completions.create(
            model=model, temperature=0, max_tokens=32, extra_body=extra,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        answer = r.choices[0].message.content
        print(f"{extra or 'dense'}: {answer!r} ({r.choices[0].finish_reason})")
        ok &= "Paris" in answer and r.choices[0].finish_reason == "stop"
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=model, temperature=0, max_tokens=32, extra_body=extra, stream=True,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
            if c.choices)
        ok &= streamed == answer
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
